using System.Text.Json;

namespace MoeSharp.Text;

/// <summary>One added token of <c>tokenizer.json</c>: matched in the raw text before any other step.</summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool Normalized, bool LStrip, bool RStrip, bool SingleWord);

/// <summary>A normalizer step of <c>tokenizer.json</c>, applied to each piece of text between added tokens.</summary>
internal abstract record NormalizerStep
{
    public sealed record Nfc : NormalizerStep;
    public sealed record Prepend(string Text) : NormalizerStep;
    public sealed record Replace(string Pattern, string Content) : NormalizerStep;
}

/// <summary>A pre-tokenizer step of <c>tokenizer.json</c>.</summary>
internal abstract record PreTokenizerStep
{
    public sealed record Split(CodePointRegex Regex) : PreTokenizerStep;
    public sealed record ByteLevel(bool AddPrefixSpace, CodePointRegex? Regex) : PreTokenizerStep;
    public sealed record Metaspace(string Replacement, string PrependScheme, bool SplitWords) : PreTokenizerStep;
}

/// <summary>A decoder step of <c>tokenizer.json</c> (the SentencePiece-style chain; byte-level decoding is the library's).</summary>
internal abstract record DecoderStep
{
    public sealed record Replace(string Pattern, string Content) : DecoderStep;
    public sealed record ByteFallback : DecoderStep;
    public sealed record Fuse : DecoderStep;
    public sealed record Strip(string Content, int Start, int Stop) : DecoderStep;
    public sealed record Metaspace(string Replacement, bool StripFirstSpace) : DecoderStep;
}

/// <summary>
/// The parts of a Hugging Face <c>tokenizer.json</c> that MoeSharp runs, read with System.Text.Json. Anything it
/// cannot run is refused with the file, the field and the value named, never skipped.
/// </summary>
internal sealed class TokenizerJson
{
    public required string Path { get; init; }
    public required List<KeyValuePair<string, int>> Vocab { get; init; }
    public required List<string> Merges { get; init; }
    public required List<AddedToken> AddedTokens { get; init; }
    public required List<NormalizerStep> Normalizers { get; init; }
    public required List<PreTokenizerStep> PreTokenizers { get; init; }
    public required bool ByteLevelModel { get; init; }
    public required bool ByteFallback { get; init; }
    public required bool IgnoreMerges { get; init; }
    public string? UnknownToken { get; init; }
    public required int[] PrefixIds { get; init; }
    public required int[] SuffixIds { get; init; }
    /// <summary>Null when the decoder is byte-level (the library decodes); otherwise the chain to run.</summary>
    public List<DecoderStep>? Decoders { get; init; }

    public static TokenizerJson Read(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            var r = new Reader(path);
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw r.Bad("(root)", "is not a JSON object");
            JsonElement model = r.Required(root, "model", JsonValueKind.Object);
            string type = r.OptionalString(model, "type", "model.type") ?? "BPE";
            if (type != "BPE") throw r.Bad("model.type", $"'{type}' is not supported; expected BPE");

            var vocab = new List<KeyValuePair<string, int>>();
            foreach (JsonProperty p in r.Required(model, "vocab", JsonValueKind.Object, "model.vocab").EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                    throw r.Bad($"model.vocab[\"{p.Name}\"]", $"'{p.Value}' is not a token id; expected an integer >= 0");
                vocab.Add(new(p.Name, id));
            }
            if (vocab.Count == 0) throw r.Bad("model.vocab", "is empty");

            var merges = new List<string>();
            if (model.TryGetProperty("merges", out JsonElement mergeList) && mergeList.ValueKind == JsonValueKind.Array)
            {
                int i = 0;
                foreach (JsonElement m in mergeList.EnumerateArray())
                {
                    string? merge = m.ValueKind switch
                    {
                        JsonValueKind.String => m.GetString(),
                        // newer files write a merge as a pair rather than "a b"
                        JsonValueKind.Array when m.GetArrayLength() == 2 => m[0].GetString() + " " + m[1].GetString(),
                        _ => null,
                    };
                    if (merge is null || merge.Split(' ').Length != 2)
                        throw r.Bad($"model.merges[{i}]", $"'{m}' is not a merge; expected \"left right\" or [left, right]");
                    merges.Add(merge);
                    i++;
                }
            }
            if (r.OptionalString(model, "continuing_subword_prefix", "model.continuing_subword_prefix") is { Length: > 0 } csp)
                throw r.Bad("model.continuing_subword_prefix", $"'{csp}' is not supported; expected none");
            if (r.OptionalString(model, "end_of_word_suffix", "model.end_of_word_suffix") is { Length: > 0 } eow)
                throw r.Bad("model.end_of_word_suffix", $"'{eow}' is not supported; expected none");
            if (model.TryGetProperty("dropout", out JsonElement dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
                throw r.Bad("model.dropout", $"'{dropout}' is not supported; expected null (deterministic encoding)");

            var added = new List<AddedToken>();
            if (root.TryGetProperty("added_tokens", out JsonElement addedList) && addedList.ValueKind == JsonValueKind.Array)
            {
                int i = 0;
                foreach (JsonElement a in addedList.EnumerateArray())
                {
                    string where = $"added_tokens[{i++}]";
                    if (a.ValueKind != JsonValueKind.Object || !a.TryGetProperty("id", out JsonElement idEl) || !idEl.TryGetInt32(out int id))
                        throw r.Bad(where + ".id", "is missing; expected an integer");
                    string content = r.OptionalString(a, "content", where + ".content") ?? throw r.Bad(where + ".content", "is missing; expected a string");
                    if (content.Length == 0) throw r.Bad(where + ".content", "is empty");
                    added.Add(new AddedToken(id, content, Flag(a, "special"), Flag(a, "normalized"), Flag(a, "lstrip"), Flag(a, "rstrip"), Flag(a, "single_word")));
                }
            }

            var normalizers = new List<NormalizerStep>();
            if (root.TryGetProperty("normalizer", out JsonElement norm)) r.Normalizer(norm, "normalizer", normalizers);
            var preTokenizers = new List<PreTokenizerStep>();
            if (root.TryGetProperty("pre_tokenizer", out JsonElement pre)) r.PreTokenizer(pre, "pre_tokenizer", preTokenizers);
            var prefix = new List<int>();
            var suffix = new List<int>();
            if (root.TryGetProperty("post_processor", out JsonElement post)) r.PostProcessor(post, "post_processor", prefix, suffix);
            List<DecoderStep>? decoders = null;
            bool byteLevelDecoder = false;
            if (root.TryGetProperty("decoder", out JsonElement dec) && dec.ValueKind == JsonValueKind.Object)
            {
                if (r.OptionalString(dec, "type", "decoder.type") == "ByteLevel") byteLevelDecoder = true;
                else r.Decoder(dec, "decoder", decoders = []);
            }
            else
            {
                decoders = [];
            }

            bool byteLevel = preTokenizers.Exists(s => s is PreTokenizerStep.ByteLevel);
            if (byteLevel != byteLevelDecoder)
                throw r.Bad("decoder", byteLevel ? "is not ByteLevel though the pre_tokenizer is; expected both or neither" : "is ByteLevel though the pre_tokenizer is not; expected both or neither");

            return new TokenizerJson
            {
                Path = path,
                Vocab = vocab,
                Merges = merges,
                AddedTokens = added,
                Normalizers = normalizers,
                PreTokenizers = preTokenizers,
                ByteLevelModel = byteLevel,
                ByteFallback = Flag(model, "byte_fallback"),
                IgnoreMerges = Flag(model, "ignore_merges"),
                UnknownToken = r.OptionalString(model, "unk_token", "model.unk_token"),
                PrefixIds = [.. prefix],
                SuffixIds = [.. suffix],
                Decoders = decoders,
            };
        }
    }

    private static bool Flag(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.True;

    private sealed class Reader(string path)
    {
        public InvalidDataException Bad(string field, string problem) => new($"{path}: {field} {problem}.");

        public JsonElement Required(JsonElement obj, string name, JsonValueKind kind, string? field = null)
        {
            if (!obj.TryGetProperty(name, out JsonElement v)) throw Bad(field ?? name, "is missing");
            if (v.ValueKind != kind) throw Bad(field ?? name, $"is {v.ValueKind}; expected {kind}");
            return v;
        }

        public string? OptionalString(JsonElement obj, string name, string field)
        {
            if (!obj.TryGetProperty(name, out JsonElement v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind != JsonValueKind.String) throw Bad(field, $"is {v.ValueKind}; expected a string");
            return v.GetString();
        }

        private string Type(JsonElement step, string field)
        {
            if (step.ValueKind != JsonValueKind.Object) throw Bad(field, $"is {step.ValueKind}; expected an object");
            return OptionalString(step, "type", field + ".type") ?? throw Bad(field + ".type", "is missing");
        }

        private string Pattern(JsonElement step, string field, out bool isRegex)
        {
            JsonElement p = Required(step, "pattern", JsonValueKind.Object, field + ".pattern");
            if (p.TryGetProperty("Regex", out JsonElement re) && re.ValueKind == JsonValueKind.String)
            {
                isRegex = true;
                return re.GetString()!;
            }
            if (p.TryGetProperty("String", out JsonElement s) && s.ValueKind == JsonValueKind.String)
            {
                isRegex = false;
                return s.GetString()!;
            }
            throw Bad(field + ".pattern", "has neither Regex nor String");
        }

        public void Normalizer(JsonElement step, string field, List<NormalizerStep> steps)
        {
            if (step.ValueKind == JsonValueKind.Null) return;
            string type = Type(step, field);
            switch (type)
            {
                case "Sequence":
                    int i = 0;
                    foreach (JsonElement s in Required(step, "normalizers", JsonValueKind.Array, field + ".normalizers").EnumerateArray())
                        Normalizer(s, $"{field}.normalizers[{i++}]", steps);
                    break;
                case "NFC":
                    steps.Add(new NormalizerStep.Nfc());
                    break;
                case "Prepend":
                    steps.Add(new NormalizerStep.Prepend(OptionalString(step, "prepend", field + ".prepend") ?? throw Bad(field + ".prepend", "is missing")));
                    break;
                case "Replace":
                    string pattern = Pattern(step, field, out bool isRegex);
                    if (isRegex) throw Bad(field + ".pattern", $"Regex '{pattern}' is not supported; expected String");
                    steps.Add(new NormalizerStep.Replace(pattern, OptionalString(step, "content", field + ".content") ?? ""));
                    break;
                default:
                    throw Bad(field + ".type", $"'{type}' is not supported; expected NFC, Prepend, Replace or Sequence");
            }
        }

        public void PreTokenizer(JsonElement step, string field, List<PreTokenizerStep> steps)
        {
            if (step.ValueKind == JsonValueKind.Null) return;
            string type = Type(step, field);
            switch (type)
            {
                case "Sequence":
                    int i = 0;
                    foreach (JsonElement s in Required(step, "pretokenizers", JsonValueKind.Array, field + ".pretokenizers").EnumerateArray())
                        PreTokenizer(s, $"{field}.pretokenizers[{i++}]", steps);
                    break;
                case "Split":
                    string pattern = Pattern(step, field, out bool isRegex);
                    string behavior = OptionalString(step, "behavior", field + ".behavior") ?? "Isolated";
                    if (behavior != "Isolated") throw Bad(field + ".behavior", $"'{behavior}' is not supported; expected Isolated");
                    if (Flag(step, "invert")) throw Bad(field + ".invert", "true is not supported; expected false");
                    steps.Add(new PreTokenizerStep.Split(new CodePointRegex(isRegex ? pattern : System.Text.RegularExpressions.Regex.Escape(pattern), $"{path}: {field}.pattern")));
                    break;
                case "ByteLevel":
                    // use_regex defaults to true in the format: GPT-2's own split
                    bool useRegex = !step.TryGetProperty("use_regex", out JsonElement ur) || ur.ValueKind != JsonValueKind.False;
                    steps.Add(new PreTokenizerStep.ByteLevel(Flag(step, "add_prefix_space"), useRegex ? new CodePointRegex(Gpt2Split, $"{path}: {field}") : null));
                    break;
                case "Metaspace":
                    string replacement = OptionalString(step, "replacement", field + ".replacement") ?? "\u2581";
                    string scheme = OptionalString(step, "prepend_scheme", field + ".prepend_scheme")
                        ?? (step.TryGetProperty("add_prefix_space", out JsonElement aps) && aps.ValueKind == JsonValueKind.False ? "never" : "always");
                    if (scheme is not ("always" or "first" or "never"))
                        throw Bad(field + ".prepend_scheme", $"'{scheme}' is not supported; expected always, first or never");
                    bool split = !step.TryGetProperty("split", out JsonElement sp) || sp.ValueKind != JsonValueKind.False;
                    steps.Add(new PreTokenizerStep.Metaspace(replacement, scheme, split));
                    break;
                default:
                    throw Bad(field + ".type", $"'{type}' is not supported; expected Split, ByteLevel, Metaspace or Sequence");
            }
        }

        public void PostProcessor(JsonElement step, string field, List<int> prefix, List<int> suffix)
        {
            if (step.ValueKind == JsonValueKind.Null) return;
            string type = Type(step, field);
            switch (type)
            {
                case "ByteLevel":
                    return; // changes offsets only
                case "Sequence":
                    int i = 0;
                    foreach (JsonElement s in Required(step, "processors", JsonValueKind.Array, field + ".processors").EnumerateArray())
                        PostProcessor(s, $"{field}.processors[{i++}]", prefix, suffix);
                    return;
                case "TemplateProcessing":
                    JsonElement specials = Required(step, "special_tokens", JsonValueKind.Object, field + ".special_tokens");
                    bool seenSequence = false;
                    int k = 0;
                    foreach (JsonElement piece in Required(step, "single", JsonValueKind.Array, field + ".single").EnumerateArray())
                    {
                        string where = $"{field}.single[{k++}]";
                        if (piece.TryGetProperty("Sequence", out JsonElement seq))
                        {
                            if (OptionalString(seq, "id", where + ".Sequence.id") != "A") throw Bad(where + ".Sequence.id", "is not A; expected the single input A");
                            seenSequence = true;
                        }
                        else if (piece.TryGetProperty("SpecialToken", out JsonElement st))
                        {
                            string name = OptionalString(st, "id", where + ".SpecialToken.id") ?? throw Bad(where + ".SpecialToken.id", "is missing");
                            if (!specials.TryGetProperty(name, out JsonElement entry) || !entry.TryGetProperty("ids", out JsonElement ids) || ids.ValueKind != JsonValueKind.Array)
                                throw Bad(field + ".special_tokens", $"has no ids for '{name}'");
                            foreach (JsonElement id in ids.EnumerateArray()) (seenSequence ? suffix : prefix).Add(id.GetInt32());
                        }
                        else
                        {
                            throw Bad(where, "is neither Sequence nor SpecialToken");
                        }
                    }
                    return;
                default:
                    throw Bad(field + ".type", $"'{type}' is not supported; expected ByteLevel, TemplateProcessing or Sequence");
            }
        }

        public void Decoder(JsonElement step, string field, List<DecoderStep> steps)
        {
            if (step.ValueKind == JsonValueKind.Null) return;
            string type = Type(step, field);
            switch (type)
            {
                case "Sequence":
                    int i = 0;
                    foreach (JsonElement s in Required(step, "decoders", JsonValueKind.Array, field + ".decoders").EnumerateArray())
                        Decoder(s, $"{field}.decoders[{i++}]", steps);
                    break;
                case "Replace":
                    string pattern = Pattern(step, field, out bool isRegex);
                    if (isRegex) throw Bad(field + ".pattern", $"Regex '{pattern}' is not supported; expected String");
                    steps.Add(new DecoderStep.Replace(pattern, OptionalString(step, "content", field + ".content") ?? ""));
                    break;
                case "ByteFallback":
                    steps.Add(new DecoderStep.ByteFallback());
                    break;
                case "Fuse":
                    steps.Add(new DecoderStep.Fuse());
                    break;
                case "Strip":
                    steps.Add(new DecoderStep.Strip(OptionalString(step, "content", field + ".content") ?? " ", Int(step, "start"), Int(step, "stop")));
                    break;
                case "Metaspace":
                    string scheme = OptionalString(step, "prepend_scheme", field + ".prepend_scheme")
                        ?? (step.TryGetProperty("add_prefix_space", out JsonElement aps) && aps.ValueKind == JsonValueKind.False ? "never" : "always");
                    steps.Add(new DecoderStep.Metaspace(OptionalString(step, "replacement", field + ".replacement") ?? "\u2581", scheme != "never"));
                    break;
                default:
                    throw Bad(field + ".type", $"'{type}' is not supported; expected ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace or Sequence");
            }
        }

        private static int Int(JsonElement obj, string name) =>
            obj.TryGetProperty(name, out JsonElement v) && v.TryGetInt32(out int n) ? n : 0;
    }

    // GPT-2's split, which a ByteLevel pre-tokenizer with use_regex applies.
    private const string Gpt2Split = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
}
