"""Helpers of native/gpu-check.sh: JSON records, comparisons and the closing table (standard library only).

Usage: gpu_check_lib.py COMMAND ARGS... (see each function).
"""
import glob
import json
import math
import os
import platform
import subprocess
import sys
import tarfile
import time
import zipfile


def record(out, phase, status, seconds, detail_file="", reason=""):
    """Writes OUT/PHASE.json and appends the phase to OUT/summary.json (rewritten whole each time)."""
    rec = {"phase": phase, "status": status, "seconds": int(seconds), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if reason:
        rec["reason"] = reason
    if detail_file and os.path.isfile(detail_file):
        try:
            with open(detail_file) as f:
                rec["result"] = json.load(f)
        except ValueError as e:
            rec["result_error"] = f"{detail_file}: {e}"
    with open(os.path.join(out, f"{phase}.json"), "w") as f:
        json.dump(rec, f, indent=1)
    summary_path = os.path.join(out, "summary.json")
    summary = []
    if os.path.isfile(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    summary = [s for s in summary if s["phase"] != phase] + [rec]
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=1)


def cuda_dirs():
    """Folders holding CUDA's libraries: the Python environment's NVIDIA wheels (nvidia/*/lib), torch/lib, /usr/local/cuda."""
    dirs = []
    try:
        import nvidia  # namespace package of the NVIDIA wheels PyTorch depends on
        for base in list(nvidia.__path__):
            dirs += sorted(glob.glob(os.path.join(base, "*", "lib")))
    except ImportError:
        pass
    try:
        import importlib.util
        spec = importlib.util.find_spec("torch")
        if spec and spec.origin:
            dirs.append(os.path.join(os.path.dirname(spec.origin), "lib"))
    except Exception:
        pass
    for d in ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"):
        dirs.append(d)
    seen, keep = set(), []
    for d in dirs:
        if os.path.isdir(d) and d not in seen:
            seen.add(d)
            keep.append(d)
    print(":".join(keep))


def untar(archive, dst):
    with tarfile.open(archive, "r:*") as t:
        try:
            t.extractall(dst, filter="tar")
        except TypeError:  # Python < 3.12 has no filter argument
            t.extractall(dst)


def jar(src, dst):
    """Zips the unpacked jar back, entries in their original order, stored (the JVM reads stored entries fastest)."""
    with open(os.path.join(src, "jar-order.txt")) as f:
        order = [line.rstrip("\n") for line in f if line.strip()]
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        for name in order:
            path = os.path.join(src, name)
            if name.endswith("/"):
                z.writestr(zipfile.ZipInfo(name), b"")
            else:
                z.write(path, name)


def env(dst):
    info = {"python": platform.python_version(), "host": platform.node()}
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.memory",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
        info["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        info["nvidia_smi"] = f"unavailable: {e}"
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        info["torch_gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception as e:
        info["torch"] = f"unavailable: {e}"
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except Exception as e:
        info["transformers"] = f"unavailable: {e}"
    info["cuda_library_dirs"] = os.environ.get("SPARSE_SERVE_CUDA_LIBS", "")
    with open(dst, "w") as f:
        json.dump(info, f, indent=1)


def collect(work, *args):
    """collect WORK PATTERN... OUT [--all-pass]: one JSON object {file stem: content}; --all-pass fails unless every
    object has "pass": true."""
    all_pass = "--all-pass" in args
    args = [a for a in args if a != "--all-pass"]
    patterns, dst = args[:-1], args[-1]
    found = {}
    for p in patterns:
        for path in sorted(glob.glob(os.path.join(work, p))):
            found[os.path.splitext(os.path.basename(path))[0]] = _load(path)
    with open(dst, "w") as f:
        json.dump(found, f, indent=1)
    if not found:
        sys.exit("no results matched " + " ".join(patterns))
    if all_pass and not all(v.get("pass") is True for v in found.values()):
        sys.exit("not every check passed: " + ", ".join(k for k, v in found.items() if v.get("pass") is not True))


def _load(path):
    """A command's JSON output, or a record of its absence (the command failed before printing)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"error": f"no JSON result ({e.__class__.__name__})", "pass": False}


def compare_eval(work, tol, dst):
    """GPU perplexity within a relative tol of the CPU's, model by model."""
    tol = float(tol)
    res, ok = {}, True
    for cpu in sorted(glob.glob(os.path.join(work, "eval-cpu-*.json"))):
        name = os.path.basename(cpu)[len("eval-cpu-"):-len(".json")]
        gpu = os.path.join(work, f"eval-gpu-{name}.json")
        c = _load(cpu)
        if "perplexity" not in c:
            continue
        if not os.path.isfile(gpu) or "perplexity" not in _load(gpu):
            res[name] = {"cpu": c["perplexity"], "gpu": None, "pass": False}
            ok = False
            continue
        g = _load(gpu)
        rel = abs(g["perplexity"] - c["perplexity"]) / c["perplexity"]
        res[name] = {"cpu": c["perplexity"], "gpu": g["perplexity"], "relative_difference": rel, "pass": rel <= tol,
                     "cpu_seconds": c.get("seconds"), "gpu_seconds": g.get("seconds")}
        ok = ok and rel <= tol
    with open(dst, "w") as f:
        json.dump({"tolerance": tol, "models": res, "pass": ok and bool(res)}, f, indent=1)
    if not (ok and res):
        sys.exit("perplexity differs or is missing")


def bytes_ratio(inspect_json, dst):
    with open(inspect_json) as f:
        i = json.load(f)
    ratio = i["linear_weight_bytes"] / i["linear_dense_equivalent_bytes"]
    with open(dst, "w") as f:
        json.dump({"linear_weight_bytes": i["linear_weight_bytes"], "linear_dense_equivalent_bytes":
                   i["linear_dense_equivalent_bytes"], "ratio": ratio, "pass_le_0.6": ratio <= 0.6}, f, indent=1)


def fault_check(dst, timeout, *cmd):
    """fault-check OUT TIMEOUT -- CMD...: starts CMD (serve on port 0 with a sticky fault injected into its device's
    step), waits for its "listening on" line, posts one completion, and waits for the process to end by itself.
    Passes when the request gets 503, the process exits 1 and its stderr says why (issue 8: a sticky CUDA error ends
    the server so that an orchestrator restarts it)."""
    import re
    import threading
    import urllib.error
    import urllib.request
    cmd = [c for c in cmd if c != "--"]
    timeout = float(timeout)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines, port = [], []
    listening = threading.Event()

    def read():
        for line in p.stderr:
            lines.append(line.rstrip("\n"))
            m = re.search(r"sparse-serve: listening on [0-9.]+:(\d+)", line)
            if m:
                port.append(int(m.group(1)))
                listening.set()
    t = threading.Thread(target=read, daemon=True)
    t.start()
    res = {"command": " ".join(cmd)}
    try:
        if not listening.wait(timeout):
            res["error"] = "serve did not start listening"
        else:
            req = urllib.request.Request(f"http://127.0.0.1:{port[0]}/v1/completions", method="POST",
                                         data=b'{"prompt": "The kernel", "max_tokens": 8}',
                                         headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    res["http_status"] = r.status
            except urllib.error.HTTPError as e:
                res["http_status"] = e.code
                res["http_body"] = e.read().decode("utf-8", "replace")[:300]
            except Exception as e:  # the server may close the connection as it exits
                res["http_error"] = repr(e)
        try:
            res["exit_code"] = p.wait(timeout)
        except subprocess.TimeoutExpired:
            res["exit_code"] = None
            res["error"] = "serve did not end by itself"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    t.join(5)
    res["stderr_tail"] = lines[-8:]
    res["said_why"] = any("error: device failed, exiting so that the server is restarted" in l for l in lines)
    res["pass"] = res.get("exit_code") == 1 and res.get("http_status") == 503 and res["said_why"]
    with open(dst, "w") as f:
        json.dump(res, f, indent=1)
    if not res["pass"]:
        sys.exit("the sticky fault did not end serve as expected: " + json.dumps({k: res.get(k) for k in ("http_status", "exit_code", "error")}))


def _get(summary, phase, *path):
    for s in summary:
        if s["phase"] == phase:
            v = s.get("result")
            for p in path:
                if not isinstance(v, dict) or p not in v:
                    return None
                v = v[p]
            return v
    return None


def table(out):
    """The closing table: each phase's status, then the acceptance ratios that the results allow."""
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    lines = ["", "phase            status    s  note", "---------------- -------- ---- ----"]
    for s in summary:
        lines.append(f"{s['phase']:<16} {s['status']:<8} {s['seconds']:>4}  {s.get('reason', '')[:90]}")
    rows = []

    def tps(tag):
        return _get(summary, "bench_dense", f"bench-{tag}", "decode_tokens_per_s") or \
               _get(summary, "bench_own", f"bench-{tag}", "decode_tokens_per_s") or \
               _get(summary, "bench_other", f"bench-{tag}", "decode_tokens_per_s")

    d1, d16 = tps("dense-b1"), tps("dense-b16")
    copy = _get(summary, "gpu_calibrate", "copy_gbps")
    gemm = _get(summary, "gpu_calibrate", "gemm_tflops_m512")
    gbps = _get(summary, "bench_dense", "bench-dense-b1", "decode_weight_gbps")
    if gbps and copy:
        rows.append(("2. dense b1 weight GB/s / copy GB/s >= 0.6", gbps / copy))
    if d1 and d16:
        rows.append(("2. dense b16 / b1 tok/s >= 8", d16 / d1))
    for tag, lim, label in (("half-own-b1", 1.3, "3. 50% / dense b1 >= 1.3"), ("nm24-own-b1", 1.2, "3. 2:4 / dense b1 >= 1.2")):
        v = tps(tag)
        if v and d1:
            rows.append((label, v / d1))
    h16 = tps("half-own-b16")
    if h16 and d16:
        rows.append(("3. 50% / dense b16 >= 1.2", h16 / d16))
    pf = _get(summary, "bench_dense", "bench-dense-b1", "prefill_gflops")
    if pf and gemm:
        rows.append(("4. prefill GFLOP/s / cuBLAS GEMM >= 0.5", pf / (gemm * 1000)))
    hf = _get(summary, "hf_eager", "decode_tokens_per_s")
    if hf and d1:
        rows.append(("5. dense b1 / transformers eager >= 2", d1 / hf))
    hfc = _get(summary, "hf_compiled", "decode_tokens_per_s")
    if hfc and d1:
        rows.append(("5. dense b1 / transformers compiled (report)", d1 / hfc))
    r = _get(summary, "synth", "ratio")
    if r:
        rows.append(("6. 50% linear bytes / dense <= 0.6", r))
    if rows:
        lines += ["", "acceptance ratio                                  value", "-" * 56]
        lines += [f"{k:<48} {v:8.3f}" for k, v in rows]
    checks = []
    split = _get(summary, "gpu_split")
    if isinstance(split, dict) and split:
        same = [k for k, v in split.items() if isinstance(v, dict) and v.get("same_ids") is True]
        checks.append(("12.3 cuda:0,0 ids == cuda:0 (32 greedy tokens)", f"{len(same)}/{len(split)} models"))
    fault = _get(summary, "gpu_fault")
    if isinstance(fault, dict) and "pass" in fault:
        checks.append(("8 sticky CUDA error: 503, exit 1", "pass" if fault["pass"] else "FAIL"))
    auto = _get(summary, "sparse_auto")
    if isinstance(auto, dict) and auto:
        n = sum(len(((v or {}).get("runner") or {}).get("sparse_choices") or []) for v in auto.values() if isinstance(v, dict))
        checks.append(("8 --sparse-kernel auto choices (inspect)", f"{n} shape/phase choices"))
    if checks:
        lines += ["", "check                                             result", "-" * 56]
        lines += [f"{k:<48} {v}" for k, v in checks]
    print("\n".join(lines))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"record": record, "cuda-dirs": cuda_dirs, "untar": untar, "jar": jar, "env": env, "collect": collect,
     "compare-eval": compare_eval, "bytes-ratio": bytes_ratio, "fault-check": fault_check, "table": table}[cmd](*args)
