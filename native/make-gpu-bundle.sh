#!/usr/bin/env bash
# Builds what native/gpu-check.sh needs on the GPU machine, which has no Java, no Maven and no network, into the
# ignored folder gpu-bundle/ (carry it with the working tree):
#   runtime.tar.xz      a jlink'd Java runtime (java.base, jdk.incubator.vector and the modules jdeps finds in the jar)
#   app.tar.xz          the jar's entries with only linux-x86_64 native libraries (no other platforms' tokenizer/JNA
#                       libraries, no JCuda PTX compiler or NVRTC, which we never call); gpu-check.sh re-zips it
#   fixtures/           the Llama 3 and Qwen2 fixtures (../shared does not travel; the Llama and OPT fixtures and the
#                       first 60 000 characters of data/kdoc/test.txt are tracked under src/test/resources)
#   data/               the first 200 000 characters of data/kdoc/calibration.txt (for prune --method sparsegpt)
# and checks that the repository's tracked files plus the bundle stay under 64 MiB.
# Usage: native/make-gpu-bundle.sh [--shared DIR] (default ../shared); builds the jar first when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shared=../shared
if [ "${1:-}" = "--shared" ]; then shared="$2"; fi
out=gpu-bundle
limit=$((64 * 1024 * 1024))
JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
export JAVA_HOME
for tool in jlink jdeps; do
  [ -x "$JAVA_HOME/bin/$tool" ] || { echo "make-gpu-bundle: $JAVA_HOME/bin/$tool not found (set JAVA_HOME to a JDK 25)" >&2; exit 2; }
done
[ -d "$shared/fixtures" ] || { echo "make-gpu-bundle: $shared/fixtures not found (pass --shared DIR)" >&2; exit 2; }
if [ ! -f target/sparse-serve.jar ]; then
  echo "make-gpu-bundle: building the jar"
  mvn -q -B -o package -DskipTests
fi
rm -rf "$out"
mkdir -p "$out/fixtures" "$out/data"

# 1. The runtime: the modules the jar uses (jdeps) plus the Vector API's incubator module. Uncompressed in the image
#    and xz-compressed as a whole (about 22 MB instead of 39 MB for jlink's own zip compression inside a .tgz).
modules=$("$JAVA_HOME/bin/jdeps" --multi-release 25 --print-module-deps --ignore-missing-deps target/sparse-serve.jar)
modules="$modules,jdk.incubator.vector"
echo "make-gpu-bundle: jlink $modules"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$JAVA_HOME/bin/jlink" --add-modules "$modules" --strip-debug --no-header-files --no-man-pages \
  --compress=zip-0 --output "$tmp/runtime" 2> >(grep -v 'Using incubator modules' >&2)
tar -C "$tmp" -cf - runtime | xz -6 -T2 > "$out/runtime.tar.xz"

# 2. The application: the jar's entries without other platforms' native libraries and without JCuda's PTX compiler
#    and NVRTC bindings (never called), as an xz tarball of the entries (a jar is deflated entry by entry; xz over
#    all of them is half the size). gpu-check.sh zips them back into a jar, in the order listed in jar-order.txt.
python3 - target/sparse-serve.jar "$tmp/app" <<'PY'
import os, re, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
native = re.compile(r'\.(so|dll|dylib|jnilib|a)$')
def keep(name):
    if name.startswith('lib/libJNvPTXCompiler') or name.startswith('lib/libJNvrtc'):
        return False
    if not native.search(name):
        return True
    return 'linux-x86_64' in name or 'linux-x86-64' in name
order, dropped = [], 0
os.makedirs(dst)
with zipfile.ZipFile(src) as z:
    for info in z.infolist():
        if not keep(info.filename):
            dropped += info.file_size
            continue
        order.append(info.filename)
        z.extract(info, dst)
with open(os.path.join(dst, 'jar-order.txt'), 'w') as f:
    f.write('\n'.join(order) + '\n')
print(f"make-gpu-bundle: the jar keeps {len(order)} entries, drops {dropped / 2**20:.1f} MiB of other platforms' libraries")
PY
tar -C "$tmp/app" -cf - . | xz -6 -T2 > "$out/app.tar.xz"

# 3. Fixtures and text.
for f in tiny-llama3-bf16 tiny-qwen2-f32; do cp -r "$shared/fixtures/$f" "$out/fixtures/"; done
python3 - "$shared/data/kdoc" "$out/data" <<'PY'
import sys
src, dst = sys.argv[1], sys.argv[2]
for name, chars in (("calibration.txt", 200000),):
    with open(f"{src}/{name}", encoding="utf-8") as f:
        text = f.read(chars)
    with open(f"{dst}/{name}", "w", encoding="utf-8") as f:
        f.write(text)
PY

# 4. The size of what travels: tracked files + bundle.
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
bundle=$(du -cb "$out" | tail -1 | cut -f1)
total=$((tracked + bundle))
printf 'make-gpu-bundle: tracked files %.1f MiB + bundle %.1f MiB = %.1f MiB (limit 64 MiB)\n' \
  "$(echo "$tracked / 1048576" | bc -l)" "$(echo "$bundle / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)"
du -b "$out"/* | sort -n | awk '{printf "  %8.1f MiB  %s\n", $1 / 1048576, $2}'
if [ "$total" -ge "$limit" ]; then echo "make-gpu-bundle: over the 64 MiB limit" >&2; exit 1; fi
