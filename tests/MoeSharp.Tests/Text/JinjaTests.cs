using System.Text.Json;
using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

/// <summary>The Jinja interpreter on small hand-written templates: each construct, the whitespace control, and the
/// errors; expected outputs worked out by hand from Jinja's documented semantics (exact string equality).</summary>
public sealed class JinjaTests
{
    private static string Render(string template, params (string Name, object? Value)[] variables) =>
        ChatTemplate.Parse(template).Render(variables.ToDictionary(v => v.Name, v => v.Value));

    private static List<object?> L(params object?[] items) => [.. items];

    [Fact]
    public void ForLoopExposesIndexFirstAndLast()
    {
        string t = "{% for x in xs %}{{ loop.index0 }}{{ x }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %},{% endfor %}";
        Assert.Equal("0aF,1b,2cL,", Render(t, ("xs", L("a", "b", "c"))));
        Assert.Equal("", Render(t, ("xs", L())));
        Assert.Equal("none", Render("{% for x in xs %}{{ x }}{% else %}none{% endfor %}", ("xs", L())));
        Assert.Equal("13", Render("{% for x in [1, 2, 3] if x != 2 %}{{ x }}{% endfor %}"));
    }

    [Theory]
    [InlineData(1L, "one")]
    [InlineData(2L, "two")]
    [InlineData(5L, "many")]
    public void IfElifElsePicksOneBranch(long n, string expected) =>
        Assert.Equal(expected, Render("{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}", ("n", n)));

    [Fact]
    public void SetInsideALoopStaysInTheLoopButNamespaceAttributesCarryOut()
    {
        Assert.Equal("1", Render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{% endfor %}{{ x }}"));
        Assert.Equal("6", Render("{% set ns = namespace(t=0) %}{% for i in [1, 2, 3] %}{% set ns.t = ns.t + i %}{% endfor %}{{ ns.t }}"));
    }

    [Fact]
    public void StringMethods() =>
        Assert.Equal("True False cd x|x\n|x|", Render(
            "{{ s.startswith('ab') }} {{ s.endswith('z') }} {{ s.split(',')[-1] }} {{ '  x '.strip() }}|{{ '\\nx\\n'.lstrip('\\n') }}|{{ 'x\\n\\n'.rstrip('\\n') }}|",
            ("s", "ab,cd")));

    [Fact]
    public void SlicingAndNegativeIndexing() =>
        Assert.Equal("[3, 2, 1] cba 3 [2, 3] [1, 3]", Render("{{ [1, 2, 3][::-1] }} {{ 'abc'[::-1] }} {{ [1, 2, 3][-1] }} {{ [1, 2, 3, 4][1:3] }} {{ [1, 2, 3][::2] }}"));

    [Fact]
    public void Filters()
    {
        var d = new Dictionary<string, object?> { ["a"] = 1L, ["b"] = L(true, null, "é\"\n") };
        Assert.Equal("{\"a\": 1, \"b\": [true, null, \"é\\\"\\n\"]}", Render("{{ d | tojson }}", ("d", d)));
        Assert.Equal("{\n  \"a\": 1\n}", Render("{{ d | tojson(indent=2) }}", ("d", new Dictionary<string, object?> { ["a"] = 1L })));
        Assert.Equal("3 2 t", Render("{{ xs|length }} {{ xs|length - 1 }} {{ '  t  '|trim }}", ("xs", L(1L, 2L, 3L))));
        Assert.Equal("a=1;b=2;|a=1;b=2;", Render("{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
            ("d", new Dictionary<string, object?> { ["a"] = 1L, ["b"] = 2L })));
    }

    [Fact]
    public void Tests() =>
        Assert.Equal("TrueFalseTrueTrueFalseTrueFalse", Render(
            "{{ x is defined }}{{ y is defined }}{{ n is none }}{{ s is string }}{{ 1 is string }}{{ y is not defined }}{{ not x is defined }}",
            ("x", 1L), ("n", null), ("s", "t")));

    [Fact]
    public void OperatorsFollowJinjaPrecedence()
    {
        Assert.Equal("7 ab1 True False 2 -1", Render("{{ 1 + 2 * 3 }} {{ 'a' ~ 'b' ~ 1 }} {{ 'b' in 'abc' }} {{ 2 not in [1, 2] }} {{ 7 // 3 }} {{ -1 }}"));
        Assert.Equal("yes", Render("{{ 'yes' if a and not b else 'no' }}", ("a", true), ("b", false)));
    }

    [Fact]
    public void RaiseExceptionStopsWithTheMessageAndLine()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render("ok\n{{ raise_exception('roles must alternate') }}"));
        Assert.Equal("chat template line 2: raise_exception: roles must alternate", e.Message);
    }

    [Fact]
    public void WhitespaceControlTrimsBlocksAndMarkedSides()
    {
        Assert.Equal("abc", Render("a  {%- if true -%}  b  {%- endif -%}  c"));
        Assert.Equal("x\ny", Render("{% if true %}\nx\n{% endif %}\ny"));       // trim_blocks: the newline after a block tag
        Assert.Equal("x", Render("    {% if true %}x{% endif %}\n"));          // lstrip_blocks before, trim_blocks after
        Assert.Equal("  x\n", Render("  {{ 'x' }}\n"));                         // neither applies to output tags
        Assert.Equal("a b", Render("a {# note #}b"));
        Assert.Equal("a\n  b", Render("a\n  {%+ if true %}b{% endif %}"));      // + keeps the indentation
    }

    [Fact]
    public void MacrosTakeArgumentsWithDefaultsAndSeeTopLevelVariables()
    {
        const string greet = "{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}";
        Assert.Equal("Hello, Ann!|Hi, Bob!|Hello, Cy?", Render(greet + "{{ greet('Ann') }}|{{ greet('Bob', 'Hi') }}|{{ greet('Cy', punct='?') }}"));
        Assert.Equal("1-2", Render("{% set sep = '-' %}{% macro j(a, b) %}{{ a }}{{ sep }}{{ b }}{% endmacro %}{{ j(1, 2) }}"));
        Assert.Equal("51", Render("{% macro m() %}{% set x = 5 %}{{ x }}{% endmacro %}{% set x = 1 %}{{ m() }}{{ x }}")); // a macro's set stays inside it
        Assert.Equal("[x]", Render("{% macro inner(v) %}[{{ v }}]{% endmacro %}{% macro outer(v) %}{{ inner(v) }}{% endmacro %}{{ outer('x') }}"));
        Assert.Equal("True", Render("{% macro m(a) %}{{ a is defined }}{% endmacro %}{{ m(1) }}"));
    }

    [Fact]
    public void CallBlocksPassTheirBodyAsCaller()
    {
        Assert.Equal("[t: body]", Render("{% macro box(title) %}[{{ title }}: {{ caller() }}]{% endmacro %}{% call box('t') %}body{% endcall %}"));
        Assert.Equal("<1><2>", Render("{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(item) each([1, 2]) %}<{{ item }}>{% endcall %}"));
        Assert.Equal("[1][2]", Render("{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% for x in [1, 2] %}{% call wrap() %}{{ x }}{% endcall %}{% endfor %}"));
    }

    [Fact]
    public void GenerationBlocksRenderTheirBody() =>
        Assert.Equal("A: hi!", Render("A: {% generation %}{{ 'hi' }}!{% endgeneration %}")); // HF's tag for assistant-token masks

    [Fact]
    public void BreakAndContinueActOnTheInnermostLoop()
    {
        Assert.Equal("13", Render("{% for x in range(10) %}{% if x == 4 %}{% break %}{% endif %}{% if x % 2 == 0 %}{% continue %}{% endif %}{{ x }}{% endfor %}"));
        Assert.Equal("11 21 ", Render("{% for a in [1, 2] %}{% for b in [1, 2, 3] %}{% if b == 2 %}{% break %}{% endif %}{{ a }}{{ b }} {% endfor %}{% endfor %}"));
        Assert.Equal("ac", Render("{% for x in xs %}{% if x == 'b' %}{% continue %}{% endif %}{{ x }}{% endfor %}", ("xs", L("a", "b", "c"))));
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;

        public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
    }

    [Fact]
    public void StrftimeNowReadsTheCallersClock()
    {
        var clock = new FixedClock(new DateTimeOffset(2025, 6, 28, 9, 5, 7, TimeSpan.Zero)); // a Saturday, day 31+28+31+30+31+28 = 179
        string Now(string format) => ChatTemplate.Parse("{{ strftime_now('" + format + "') }}").Render(new Dictionary<string, object?>(), clock);
        Assert.Equal("28 Jun 2025", Now("%d %b %Y"));
        Assert.Equal("2025-06-28 09:05:07", Now("%Y-%m-%d %H:%M:%S"));
        Assert.Equal("Saturday Sat June 179 09 AM 25 6/28 100%", Now("%A %a %B %j %I %p %y %-m/%-d 100%%"));
    }

    [Fact]
    public void TypeTests() =>
        Assert.Equal("TrueFalseTrueTrueFalseTrueTrueFalse", Render(
            "{{ d is mapping }}{{ l is mapping }}{{ l is iterable }}{{ s is iterable }}{{ 3 is iterable }}{{ 3 is number }}{{ 2.5 is number }}{{ '3' is number }}",
            ("d", new Dictionary<string, object?> { ["k"] = 1L }), ("l", L(1L)), ("s", "x")));

    [Fact]
    public void DictsortSortsByKeyCaseInsensitivelyAndStably()
    {
        var d = new Dictionary<string, object?> { ["b"] = 1L, ["B"] = 2L, ["a"] = 3L };
        string Sorted(string args) => Render("{% for k, v in d|dictsort" + args + " %}{{ k }}{{ v }}{% endfor %}", ("d", d));
        Assert.Equal("a3b1B2", Sorted(""));
        Assert.Equal("B2a3b1", Sorted("(true)"));
        Assert.Equal("b1B2a3", Sorted("(by='value')"));
        Assert.Equal("b1B2a3", Sorted("(reverse=true)")); // b and B tie and keep their order, as Python's sorted does
    }

    [Fact]
    public void SelectRejectAndMap()
    {
        List<object?> messages =
        [
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "a", ["function"] = new Dictionary<string, object?> { ["name"] = "f" } },
            new Dictionary<string, object?> { ["role"] = "assistant", ["content"] = "b", ["flag"] = true },
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "c" },
        ];
        (string, object?) m = ("messages", messages);
        Assert.Equal("a,c", Render("{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }}", m));
        Assert.Equal("['b']", Render("{{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='content')|list }}", m));
        Assert.Equal("b", Render("{{ messages|selectattr('flag')|map(attribute='content')|join }}", m));
        Assert.Equal("f--", Render("{{ messages|map(attribute='function.name', default='-')|join }}", m));
        Assert.Equal("['A', 'B']", Render("{{ ['a', 'b']|map('upper')|list }}"));
        Assert.Equal("python, browser", Render("{{ tools|reject('equalto', 'code_interpreter')|join(', ') }}", ("tools", L("python", "code_interpreter", "browser"))));
        Assert.Equal("[2, 3]", Render("{{ [1, 2, 3]|select('ne', 1)|list }}"));
    }

    [Fact]
    public void JoinDefaultAndStringFilters()
    {
        Assert.Equal("1-2-3 a.b.c Ann, Bo", Render("{{ [1, 2, 3]|join('-') }} {{ 'abc'|join('.') }} {{ users|join(', ', attribute='name') }}",
            ("users", L(new Dictionary<string, object?> { ["name"] = "Ann" }, new Dictionary<string, object?> { ["name"] = "Bo" }))));
        Assert.Equal("x|z|None|w|v", Render("{{ missing|default('x') }}|{{ ''|default('y') }}{{ ''|default('z', true) }}|{{ none|default('n') }}|{{ missing|d('w') }}|{{ 0|default('v', boolean=true) }}"));
        Assert.Equal("AXB axb Hello World-Wide They're Here They'Re Here Hello", Render(
            "{{ 'aXb'|upper }} {{ 'AxB'|lower }} {{ 'hello world-wide'|title }} {{ \"they're here\"|title }} {{ \"they're here\".title() }} {{ 'hELLO'|capitalize }}"));
        Assert.Equal("a+b+c a+b-c", Render("{{ 'a-b-c'|replace('-', '+') }} {{ 'a-b-c'|replace('-', '+', 1) }}"));
        Assert.Equal("[0, 1, 2][1, 3, 5]321", Render("{{ range(3)|list }}{{ range(1, 7, 2)|list }}{{ range(3, 0, -1)|join }}"));
    }

    [Fact]
    public void TagsCloseAfterStringsThatHoldTheirDelimiter()
    {
        Assert.Equal("}}x%}", Render("{{ \"}}\" }}{% if true %}x{{ '%}' }}{% endif %}"));
        Assert.Equal("False", Render("{{ s.content is defined }}", ("s", "text"))); // an unknown attribute of a string is undefined
    }

    [Fact]
    public void MatchesPythonJinja2OnTheGoldenTemplates()
    {
        // Golden/jinja.json: each template rendered by Python's jinja2 in Hugging Face's configuration
        // (Golden/gen_jinja_golden.py); strftime_now there reads 2025-06-28 09:05:07. Exact string equality.
        string path = Path.Combine(TestPaths.RepoRoot, "tests", "MoeSharp.Tests", "Text", "Golden", "jinja.json");
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var clock = new FixedClock(new DateTimeOffset(2025, 6, 28, 9, 5, 7, TimeSpan.Zero));
        int count = 0;
        foreach (JsonElement c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var variables = (Dictionary<string, object?>)ChatTemplate.FromJson(c.GetProperty("variables"))!;
            string rendered = ChatTemplate.Parse(c.GetProperty("template").GetString()!).Render(variables, clock);
            Assert.True(c.GetProperty("rendered").GetString() == rendered, $"{c.GetProperty("name").GetString()}: rendered\n{rendered}");
            count++;
        }
        Assert.Equal(13, count);
    }

    [Theory]
    [InlineData("a\n\n{% include 'other.jinja' %}", "chat template line 3: unsupported construct 'include'.")]
    [InlineData("{% for x in xs %}\n{% endfor %}{% break %}", "chat template line 2: 'break' outside a for loop.")]
    [InlineData("{% for x in xs %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}", "chat template line 1: 'continue' outside a for loop.")]
    [InlineData("{% macro m(a) %}{% endmacro %}\n{{ m(1, b=2) }}", "chat template line 2: macro 'm' has no parameter 'b'.")]
    [InlineData("{% set a, b = 1, 2 %}", "chat template line 1: unsupported construct 'set' with ',' (expected 'set name = value' or a set block).")]
    [InlineData("{{ strftime_now('%Q') }}", "chat template line 1: strftime_now: unsupported directive '%Q'.")]
    [InlineData("{{ {'a': 1}|dictsort(by='size') }}", "chat template line 1: dictsort by 'size': expected 'key' or 'value'.")]
    [InlineData("{{ x }}\n{{ x | wordcount }}", "chat template line 2: unsupported filter 'wordcount'.")]
    [InlineData("{% if x is odd %}{% endif %}", "chat template line 1: unsupported test 'odd'.")]
    [InlineData("{{ 's'.center(3) }}", "chat template line 1: unsupported string method 'center'.")]
    [InlineData("{% if x %}\nno end", "chat template line 1: the template ends before 'endif'.")]
    public void UnsupportedConstructsNameTheConstructAndLine(string template, string message)
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render(template, ("x", "v")));
        Assert.Equal(message, e.Message);
    }
}
