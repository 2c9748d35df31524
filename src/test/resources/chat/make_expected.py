# Renders conversations.json's cases with Python's jinja2 set up as transformers' apply_chat_template sets it up
# (trim_blocks, lstrip_blocks, loop controls, raise_exception, tojson as json.dumps(ensure_ascii=False)), and writes
# expected.json: the reference the Java renderer must equal. Tool-call arguments are parsed from their JSON string
# first, as vLLM does before rendering. Run: python3 make_expected.py (jinja2 3.1).
import json
import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

cases = json.load(open("conversations.json"))
out = []
for case in cases:
    for m in case["messages"]:
        for call in m.get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    template = env.from_string(open(case["template"]).read())
    kwargs = dict(messages=case["messages"], add_generation_prompt=case["add_generation_prompt"], bos_token="<s>")
    if "tools" in case:
        kwargs["tools"] = case["tools"]
    try:
        out.append({"prompt": template.render(**kwargs)})
    except jinja2.exceptions.TemplateError as e:
        out.append({"error": str(e)})
json.dump(out, open("expected.json", "w"), indent=1, ensure_ascii=False)
