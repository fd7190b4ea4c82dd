#!/usr/bin/env python3
"""Writes jinja.json beside this script: small hand-written chat-template-style templates, each rendered by Python's
jinja2 configured as Hugging Face transformers renders chat templates (trim_blocks, lstrip_blocks, the loopcontrols
extension, tojson without ASCII escaping, raise_exception and strftime_now globals). strftime_now reads a fixed
clock, 2025-06-28 09:05:07. The independent reference for MoeSharp's Jinja interpreter (Text/Jinja*.cs).
Run from the repository root:  python3 tests/MoeSharp.Tests/Text/Golden/gen_jinja_golden.py  (needs jinja2)"""
import datetime
import json
import os

import jinja2

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = datetime.datetime(2025, 6, 28, 9, 5, 7)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = NOW.strftime

chat = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Weather in SF?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"location": "SF", "unit": "c"}}}]},
    {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
]
tools = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather now.", "parameters": {
        "type": "object", "properties": {"location": {"type": "string", "description": "City"},
                                         "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["location"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "Time now."}},
]

cases = [
    ("macro with defaults renders each message", """
{%- macro render(m, prefix='<', suffix='>\\n') -%}
{{ prefix }}{{ m.role }}{{ suffix }}{{ m.content | trim }}
{%- endmacro -%}
{%- for m in messages if m.role != 'tool' %}
{{ render(m) }}
{%- if m.role == 'system' %}{{ render(m, suffix=': ') }}{% endif %}
{% endfor %}""", {"messages": chat}),
    ("macro walking a JSON schema, as gpt-oss's template does", """
{%- macro ts(spec) -%}
{%- if spec.type == 'object' -%}
{ {%- for name, prop in spec.properties | dictsort %}{{ name }}{% if name not in spec.required | default([]) %}?{% endif %}: {{ ts(prop) }}{% if not loop.last %}, {% endif %}{% endfor -%} }
{%- elif spec.enum is defined -%}
{{ spec.enum | map('tojson') | join(' | ') }}
{%- else -%}
{{ spec.type }}
{%- endif -%}
{%- endmacro -%}
{%- for t in tools %}
// {{ t.function.description }}
type {{ t.function.name }} = {% if t.function.parameters is defined %}(_: {{ ts(t.function.parameters) }}){% else %}(){% endif %} => any;
{% endfor %}""", {"tools": tools}),
    ("call block hands its body to the macro", """
{%- macro turn(role) -%}
<|{{ role }}|>{{ caller() }}<|end|>
{%- endmacro -%}
{%- macro each(xs) -%}{%- for x in xs -%}{{ caller(x, loop.index) }}{%- endfor -%}{%- endmacro -%}
{% call turn('system') %}Be brief.{% endcall %}
{% call(m, i) each(messages) %}{{ i }}:{{ m.role }} {% endcall %}""", {"messages": chat}),
    ("break at the first tool message, continue past system", """
{%- for m in messages %}
{%- if m.role == 'tool' %}{% break %}{% endif %}
{%- if m.role == 'system' %}{% continue %}{% endif %}
[{{ loop.index0 }} {{ m.role }}]
{%- endfor %}""", {"messages": chat}),
    ("last user index found by a reversed loop with break", """
{%- set ns = namespace(last=-1) %}
{%- for m in messages[::-1] %}
{%- if m.role == 'user' %}{% set ns.last = messages | length - 1 - loop.index0 %}{% break %}{% endif %}
{%- endfor %}
{{- ns.last }}""", {"messages": chat}),
    ("strftime_now dates, as Llama 3.2 writes them", """
{%- if strftime_now is defined %}{% set date_string = strftime_now('%d %b %Y') %}{% else %}{% set date_string = '26 Jul 2024' %}{% endif %}
Today Date: {{ date_string }}
{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %j %I%p') }}""", {}),
    ("type tests", """
{%- for v in values %}
{{ v is mapping }} {{ v is iterable }} {{ v is number }} {{ v is string }} {{ v is sequence }}
{% endfor %}""", {"values": [{"a": 1}, [1, 2], "text", 3, 2.5, None]}),
    ("dictsort variants", """
{%- for k, v in d | dictsort %}{{ k }}={{ v }} {% endfor %}|
{%- for k, v in d | dictsort(true) %}{{ k }}={{ v }} {% endfor %}|
{%- for k, v in d | dictsort(false, 'value') %}{{ k }}={{ v }} {% endfor %}|
{%- for k, v in d | dictsort(reverse=true) %}{{ k }}={{ v }} {% endfor %}""", {"d": {"beta": 2, "Alpha": 3, "alpha": 1, "Gamma": 0}}),
    ("selectattr, rejectattr and map", """
users: {{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(', ') }}
others: {{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | list | tojson }}
with calls: {{ messages | selectattr('tool_calls', 'defined') | list | length }}
call names: {{ messages[4].tool_calls | map(attribute='function.name') | join }}
ids: {{ messages | map(attribute='tool_call_id', default='-') | join(' ') }}
roles upper: {{ messages | map(attribute='role') | map('upper') | join(',') }}
tool names: {{ tools | map(attribute='function') | map(attribute='name') | reject('equalto', 'get_time') | list }}""", {"messages": chat, "tools": tools}),
    ("join, default, string filters and range", """
{{ [1, 2, 3] | join('-') }} {{ 'abc' | join('.') }} {{ messages | join('|', attribute='role') }}
{{ missing | default('x') }}|{{ '' | default('y') }}|{{ '' | default('z', true) }}|{{ none | default('n') }}|{{ 0 | d('v', boolean=true) }}
{{ 'mIxEd case-words (here)' | title }} {{ "it's" | title }} {{ "it's".title() }} {{ 'hELLO wORLD' | capitalize }}
{{ 'Shout' | upper }} {{ 'QUIET' | lower }} {{ 'a.b.c' | replace('.', '/') }} {{ 'a.b.c' | replace('.', '/', 1) }} {{ 'x'.replace('x', 'y') }}
{{ range(4) | list }} {{ range(2, 9, 3) | join(',') }} {% for i in range(3, 0, -1) %}{{ i }}{% endfor %}""", {"messages": chat}),
    ("tool calls with tojson and items, as Llama 3.1 writes them", """
{%- for m in messages if m.tool_calls is defined %}
{%- set call = m.tool_calls[0].function %}
{"name": "{{ call.name }}", "parameters": {{ call.arguments | tojson }}}
{%- for k, v in call.arguments | items %} {{ k }}="{{ v }}"{% if not loop.last %},{% endif %}{% endfor %}

{{ tools[0] | tojson(indent=4) }}
{%- endfor %}""", {"messages": chat, "tools": tools}),
    ("set blocks capture their output", """
{%- set ns = namespace(header='') %}
{%- set system %}
{%- for m in messages if m.role == 'system' %}[{{ m.content }}]{% endfor %}
{%- endset %}
{%- set ns.header %}<{{ system | length }}>{% endset %}
{{- ns.header }}{{ system }}{{ system | upper }}""", {"messages": chat}),
    ("delimiters inside string literals and nested braces", """{{ "}}" }}{{ '{{' }}{% if '%}' %}ok{% endif %}{{ {'k': '}'} | tojson }}
{{ {'a': {'b': 1}} }} {{ {'a': {'b': [1, {'c': 2}]}} | tojson }}{% set d = {'x': {'y': 'z'}} %} {{ d.x.y }}""", {}),
]

out = []
for name, template, variables in cases:
    rendered = env.from_string(template).render(**variables)
    out.append({"name": name, "template": template, "variables": variables, "rendered": rendered})

with open(os.path.join(HERE, "jinja.json"), "w", encoding="utf-8", newline="\n") as f:
    json.dump({"jinja2": jinja2.__version__, "now": NOW.isoformat(), "cases": out}, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(f"jinja.json: {len(out)} cases rendered by jinja2 {jinja2.__version__}")
