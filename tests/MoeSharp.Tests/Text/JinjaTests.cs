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

    [Theory]
    [InlineData("a\n\n{% macro f() %}x{% endmacro %}", "chat template line 3: unsupported construct 'macro'.")]
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
