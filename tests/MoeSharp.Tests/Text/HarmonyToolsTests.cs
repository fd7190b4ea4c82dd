using System.Text.Json;
using MoeSharp.Text;

namespace MoeSharp.Tests.Text;

/// <summary>
/// Harmony tool definitions, calls and results against openai/harmony's own documented examples, byte for byte:
/// docs/format.md (commit e0ce87d1), section "Function calling", and test-data/test_render_functions_with_parameters.txt
/// (commit 253cdca5; its schemas are those of tests/test_harmony.py test_render_functions_with_parameters).
/// </summary>
public sealed class HarmonyToolsTests
{
    private static readonly HarmonyOptions High = new() { CurrentDate = "2025-06-28", ReasoningEffort = "high" };

    private static List<JsonElement> Tools(string json) => [.. JsonDocument.Parse(json).RootElement.Clone().EnumerateArray()];

    // The three functions of docs/format.md's "Defining available tools" example, as OpenAI tools.
    private const string WeatherTools = """
        [
          {"type": "function", "function": {"name": "get_location", "description": "Gets the location of the user."}},
          {"type": "function", "function": {"name": "get_current_weather", "description": "Gets the current weather in the provided location.",
            "parameters": {"type": "object", "properties": {
              "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
              "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
              "required": ["location"]}}},
          {"type": "function", "function": {"name": "get_multiple_weathers", "description": "Gets the current weather in the provided list of locations.",
            "parameters": {"type": "object", "properties": {
              "locations": {"type": "array", "items": {"type": "string"}, "description": "List of city and state, e.g. [\"San Francisco, CA\", \"New York, NY\"]"},
              "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},
              "required": ["locations"]}}}
        ]
        """;

    // docs/format.md, "Defining available tools": the complete input example.
    private const string DocToolsPrompt = """
<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.
Knowledge cutoff: 2024-06
Current date: 2025-06-28

Reasoning: high

# Valid channels: analysis, commentary, final. Channel must be included for every message.
Calls to these tools must go to the commentary channel: 'functions'.<|end|><|start|>developer<|message|># Instructions

Use a friendly tone.

# Tools

## functions

namespace functions {

// Gets the location of the user.
type get_location = () => any;

// Gets the current weather in the provided location.
type get_current_weather = (_: {
// The city and state, e.g. San Francisco, CA
location: string,
format?: "celsius" | "fahrenheit", // default: celsius
}) => any;

// Gets the current weather in the provided list of locations.
type get_multiple_weathers = (_: {
// List of city and state, e.g. ["San Francisco, CA", "New York, NY"]
locations: string[],
format?: "celsius" | "fahrenheit", // default: celsius
}) => any;

} // namespace functions<|end|><|start|>user<|message|>What is the weather like in SF?<|end|><|start|>assistant
""";

    // docs/format.md, "Handling tool calls": the conversation continued with the call and its output. The file has a
    // stray U+000B between <|call|> and the next <|start|> (an editing slip: the library never writes one, and its
    // test data have none), which is left out here.
    private const string DocToolResultPrompt = """
<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.
Knowledge cutoff: 2024-06
Current date: 2025-06-28

Reasoning: high

# Valid channels: analysis, commentary, final. Channel must be included for every message.
Calls to these tools must go to the commentary channel: 'functions'.<|end|><|start|>developer<|message|># Instructions

Use a friendly tone.

# Tools

## functions

namespace functions {

// Gets the location of the user.
type get_location = () => any;

// Gets the current weather in the provided location.
type get_current_weather = (_: {
// The city and state, e.g. San Francisco, CA
location: string,
format?: "celsius" | "fahrenheit", // default: celsius
}) => any;

// Gets the current weather in the provided list of locations.
type get_multiple_weathers = (_: {
// List of city and state, e.g. ["San Francisco, CA", "New York, NY"]
locations: string[],
format?: "celsius" | "fahrenheit", // default: celsius
}) => any;

} // namespace functions<|end|><|start|>user<|message|>What is the weather like in SF?<|end|><|start|>assistant<|channel|>analysis<|message|>Need to use function get_weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"San Francisco"}<|call|><|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"sunny": true, "temperature": 20}<|end|><|start|>assistant
""";

    // test-data/test_render_functions_with_parameters.txt, without its final newline (the Python test strips it).
    private const string KitchensinkPrompt = """
<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.
Knowledge cutoff: 2024-06
Current date: 2025-06-28

Reasoning: high

# Valid channels: analysis, commentary, final. Channel must be included for every message.
Calls to these tools must go to the commentary channel: 'functions'.<|end|><|start|>developer<|message|># Instructions

Always respond in riddles

# Tools

## functions

namespace functions {

// Gets the location of the user.
type get_location = () => any;

// Gets the current weather in the provided location.
type get_current_weather = (_: {
// The city and state, e.g. San Francisco, CA
location: string,
format?: "celsius" | "fahrenheit", // default: celsius
}) => any;

// Gets the current weather in the provided list of locations.
type get_multiple_weathers = (_: {
// List of city and state, e.g. ["San Francisco, CA", "New York, NY"]
locations: string[],
format?: "celsius" | "fahrenheit", // default: celsius
}) => any;

// A function with various complex schemas.
type kitchensink = (_: // params object
{
// STRING
//
// A string
// Examples:
// - "hello"
// - "world"
string?: string,
// A nullable string
string_nullable?: string | null, // default: "the default"
string_enum?: "a" | "b" | "c",
// a oneof
// default: 20
oneof_string_or_number?:
 | string // default: "default_string_in_oneof"
 | number // numbers can happen too
,
}) => any;

} // namespace functions<|end|><|start|>user<|message|>What is the weather like in SF?<|end|><|start|>assistant
""";

    [Fact]
    public void DeclaresFunctionToolsAsTheDocumentedExample()
    {
        ChatMessage[] chat = [new("system", "Use a friendly tone."), new("user", "What is the weather like in SF?")];
        Assert.Equal(DocToolsPrompt, HarmonyFormat.Render(chat, addGenerationPrompt: true, High, Tools(WeatherTools)));
    }

    [Fact]
    public void ToolCallAndItsOutputRenderAsTheDocumentedExample()
    {
        ChatMessage[] chat =
        [
            new("system", "Use a friendly tone."),
            new("user", "What is the weather like in SF?"),
            new("assistant", null)
            {
                ReasoningContent = "Need to use function get_weather.",
                ToolCalls = [new ChatToolCall("get_weather", "{\"location\":\"San Francisco\"}", "call_1")],
            },
            new("tool", "{\"sunny\": true, \"temperature\": 20}") { ToolCallId = "call_1" },
        ];
        Assert.Equal(DocToolResultPrompt, HarmonyFormat.Render(chat, addGenerationPrompt: true, High, Tools(WeatherTools)));
    }

    [Fact]
    public void OpenAiRequestMapsToolsCallsAndResultsIntoHarmony()
    {
        OpenAiChatRequest request = OpenAiMessages.ParseRequest("""
            {"model": "gpt-oss", "tools": TOOLS,
             "messages": [
              {"role": "system", "content": "Use a friendly tone."},
              {"role": "user", "content": "What is the weather like in SF?"},
              {"role": "assistant", "content": null, "reasoning_content": "Need to use function get_weather.",
               "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"San Francisco\"}"}}]},
              {"role": "tool", "tool_call_id": "call_1", "content": "{\"sunny\": true, \"temperature\": 20}"}
            ]}
            """.Replace("TOOLS", WeatherTools, StringComparison.Ordinal), "request.json");
        Assert.Equal(3, request.Tools.Count);
        Assert.Equal(DocToolResultPrompt, HarmonyFormat.Render(request.Messages, addGenerationPrompt: true, High, request.Tools));
    }

    [Fact]
    public void SchemasWithTitlesExamplesNullableEnumsAndOneOfRenderAsTheLibrarysTestData()
    {
        List<JsonElement> tools = Tools(WeatherTools);
        tools.AddRange(Tools("""
            [{"type": "function", "function": {"name": "kitchensink", "description": "A function with various complex schemas.",
              "parameters": {"description": "params object", "type": "object", "properties": {
                "string": {"type": "string", "title": "STRING", "description": "A string", "examples": ["hello", "world"]},
                "string_nullable": {"type": "string", "nullable": true, "description": "A nullable string", "default": "the default"},
                "string_enum": {"type": "string", "enum": ["a", "b", "c"]},
                "oneof_string_or_number": {"oneOf": [{"type": "string", "default": "default_string_in_oneof"},
                                                     {"type": "number", "description": "numbers can happen too"}],
                                           "description": "a oneof", "default": 20}}}}}]
            """));
        ChatMessage[] chat = [new("system", "Always respond in riddles"), new("user", "What is the weather like in SF?")];
        Assert.Equal(KitchensinkPrompt, HarmonyFormat.Render(chat, addGenerationPrompt: true, High, tools));
    }

    [Fact]
    public void ToolsWithoutASystemPromptGetADeveloperMessageOfTheirOwn()
    {
        string prompt = HarmonyFormat.Render([new ChatMessage("user", "Hi")], addGenerationPrompt: false, High,
            Tools("""[{"type": "function", "function": {"name": "ping", "description": "Line one.\nLine two."}}]"""));
        Assert.Contains("'functions'.<|end|><|start|>developer<|message|># Tools\n\n## functions\n\nnamespace functions {\n\n" +
            "// Line one.\n// Line two.\ntype ping = () => any;\n\n} // namespace functions<|end|><|start|>user<|message|>Hi<|end|>", prompt);
    }

    [Theory]
    [InlineData("""{"messages": [], "tools": {}}""", "r.json: tools is Object; expected a list")]
    [InlineData("""{"messages": [], "tools": [{"type": "retrieval"}]}""", "r.json: tools[0].type is 'retrieval'")]
    [InlineData("""{"messages": [], "tools": [{"type": "function"}]}""", "r.json: tools[0].function is missing")]
    [InlineData("""{"messages": [], "tools": [{"type": "function", "function": {"description": "x"}}]}""", "r.json: tools[0].function.name is missing")]
    [InlineData("""{"messages": [], "tools": [{"function": {"name": "f", "parameters": "x"}}]}""", "r.json: tools[0].function.parameters is String")]
    public void BadToolsNameTheField(string json, string message) =>
        Assert.Contains(message, Assert.Throws<InvalidDataException>(() => OpenAiMessages.ParseRequest(json, "r.json")).Message);

    [Fact]
    public void TheGptOssTokenizerDeclaresTools()
    {
        HfTokenizer tok = HfTokenizerSharedTests.Load("gptoss");
        ChatMessage[] chat = [new("system", "Use a friendly tone."), new("user", "What is the weather like in SF?")];
        Assert.Equal(DocToolsPrompt, tok.ApplyChatTemplate(chat, addGenerationPrompt: true, harmony: High, tools: Tools(WeatherTools)));
    }
}
