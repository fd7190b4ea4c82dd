using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace MoeSharp.Text;

/// <summary>
/// A Hugging Face tokenizer loaded from <c>tokenizer.json</c> (and <c>tokenizer_config.json</c> /
/// <c>generation_config.json</c> beside it): byte-level BPE with the file's split regexes (Qwen, DeepSeek, GPT-OSS)
/// or the SentencePiece-style Metaspace with byte fallback (Llama, Mixtral). The BPE merges and byte-level
/// encoding run in Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>; this class runs the steps around it that
/// the library cannot express: added tokens matched first, the normalizer and pre-tokenizer sequence by code
/// point, <c>ignore_merges</c>, byte fallback, the post-processor template and the SentencePiece decoder chain.
/// </summary>
public sealed class HfTokenizer
{
    private readonly TokenizerJson _spec;
    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int> _vocab;                 // model vocabulary and added tokens
    private readonly Dictionary<int, string> _idToToken;
    private readonly Dictionary<int, AddedToken> _addedById;
    private readonly Dictionary<char, AddedToken[]> _rawAdded;        // by first character, longest first; matched in the raw text
    private readonly Dictionary<char, AddedToken[]> _normalizedAdded; // the same, matched after normalization
    private readonly int[] _byteIds = new int[256];                   // <0xXX> ids for byte fallback, -1 if absent
    private ChatTemplate? _template;

    private HfTokenizer(TokenizerJson spec, string? folder)
    {
        _spec = spec;
        _vocab = new Dictionary<string, int>(spec.Vocab.Count + spec.AddedTokens.Count, StringComparer.Ordinal);
        _idToToken = new Dictionary<int, string>(spec.Vocab.Count + spec.AddedTokens.Count);
        foreach (var (token, id) in spec.Vocab)
        {
            _vocab[token] = id;
            _idToToken[id] = token;
        }
        _addedById = [];
        var special = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (AddedToken a in spec.AddedTokens)
        {
            _vocab[a.Content] = a.Id;
            _idToToken[a.Id] = a.Content;
            _addedById[a.Id] = a;
            special[a.Content] = a.Id;
        }
        _rawAdded = SortedForMatching(spec.AddedTokens.FindAll(a => !a.Normalized));
        _normalizedAdded = SortedForMatching(spec.AddedTokens.FindAll(a => a.Normalized));
        for (int b = 0; b < 256; b++) _byteIds[b] = _vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;

        try
        {
            _bpe = BpeTokenizer.Create(new BpeOptions(spec.Vocab)
            {
                Merges = spec.Merges,
                ByteLevel = spec.ByteLevelModel,
                SpecialTokens = special,
                UnknownToken = spec.UnknownToken,
            });
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new InvalidDataException($"{spec.Path}: model could not be built: {e.Message}", e);
        }
        VocabSize = _idToToken.Keys.Max() + 1;

        if (folder is not null) ReadConfigs(folder);
    }

    /// <summary>Ids below this bound cover every token of the model and the added tokens.</summary>
    public int VocabSize { get; }

    /// <summary>The added tokens of <c>tokenizer.json</c> (special or not), in file order.</summary>
    public IReadOnlyList<AddedToken> AddedTokens => _spec.AddedTokens;

    /// <summary>The beginning-of-sequence token from <c>tokenizer_config.json</c>, or null.</summary>
    public string? BosToken { get; private set; }

    /// <summary>The end-of-sequence token from <c>tokenizer_config.json</c>, or null.</summary>
    public string? EosToken { get; private set; }

    /// <summary>The padding token from <c>tokenizer_config.json</c>, or null.</summary>
    public string? PadToken { get; private set; }

    /// <summary>
    /// Ids that end generation: the EOS token's and every <c>eos_token_id</c> of <c>generation_config.json</c>
    /// (chat models list their end-of-turn token there).
    /// </summary>
    public IReadOnlyList<int> StopTokenIds { get; private set; } = [];

    /// <summary>The <c>chat_template</c> of <c>tokenizer_config.json</c> (its "default" one if named), or null.</summary>
    public string? ChatTemplate { get; private set; }

    /// <summary>
    /// Loads <paramref name="folderOrFile"/>: a folder holding <c>tokenizer.json</c> (its
    /// <c>tokenizer_config.json</c> and <c>generation_config.json</c> are read when present) or the
    /// <c>tokenizer.json</c> file itself.
    /// </summary>
    public static HfTokenizer Load(string folderOrFile)
    {
        string file = Directory.Exists(folderOrFile) ? Path.Combine(folderOrFile, "tokenizer.json") : folderOrFile;
        if (!File.Exists(file)) throw new FileNotFoundException($"tokenizer file '{file}' does not exist.", file);
        return new HfTokenizer(TokenizerJson.Read(file), Path.GetDirectoryName(Path.GetFullPath(file)));
    }

    /// <summary>The id of <paramref name="token"/> (vocabulary spelling, or an added token's content), or null.</summary>
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    /// <summary>The vocabulary spelling of <paramref name="id"/>, or null when no token has it.</summary>
    public string? IdToToken(int id) => _idToToken.TryGetValue(id, out string? t) ? t : null;

    /// <summary>Whether <paramref name="id"/> is an added token marked special (skipped by
    /// <see cref="Decode"/> with skipSpecialTokens).</summary>
    public bool IsSpecial(int id) => _addedById.TryGetValue(id, out AddedToken? a) && a.Special;

    /// <summary>
    /// The ids of <paramref name="text"/>. Added tokens in the text (<c>&lt;|im_start|&gt;</c>) are matched as
    /// tokens, as Hugging Face does; <paramref name="addSpecialTokens"/> applies the post-processor's template
    /// (BOS for Llama-style files; nothing for byte-level ones).
    /// </summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        if (addSpecialTokens) ids.AddRange(_spec.PrefixIds);
        foreach (var (start, length, added) in SplitAdded(text, 0, text.Length, _rawAdded))
        {
            if (added is not null)
            {
                ids.Add(added.Id);
                continue;
            }
            string normalized = Normalize(text.Substring(start, length));
            bool atStart = start == 0;
            foreach (var (s, l, inner) in SplitAdded(normalized, 0, normalized.Length, _normalizedAdded))
            {
                if (inner is not null) ids.Add(inner.Id);
                else EncodeSegment(normalized.Substring(s, l), atStart && s == 0, ids);
            }
        }
        if (addSpecialTokens) ids.AddRange(_spec.SuffixIds);
        return [.. ids];
    }

    /// <summary>The text of <paramref name="ids"/>; added tokens are written as their content unless
    /// <paramref name="skipSpecialTokens"/> drops the special ones.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var kept = new List<int>();
        foreach (int id in ids)
        {
            if (!_idToToken.ContainsKey(id)) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is not in the vocabulary (size {VocabSize}).");
            if (!(skipSpecialTokens && IsSpecial(id))) kept.Add(id);
        }
        if (_spec.Decoders is null) return _bpe.Decode(kept, considerSpecialTokens: true) ?? "";
        var tokens = new List<string>(kept.Count);
        foreach (int id in kept) tokens.Add(_idToToken[id]);
        return RunDecoders(tokens, _spec.Decoders);
    }

    /// <summary>
    /// Renders <paramref name="messages"/> with this model's <see cref="ChatTemplate"/> (bos/eos tokens passed in),
    /// or, for a harmony vocabulary without a template (GPT-OSS), with <see cref="HarmonyFormat"/>.
    /// </summary>
    /// <param name="tools">Function tools in the OpenAI shape, passed to the template as <c>tools</c> or declared
    /// in the harmony developer message.</param>
    /// <param name="clock">What the template's <c>strftime_now</c> reads; the system clock when null.</param>
    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra = null,
        HarmonyOptions? harmony = null, IReadOnlyList<JsonElement>? tools = null, TimeProvider? clock = null)
    {
        if (ChatTemplate is not null)
        {
            _template ??= Text.ChatTemplate.Parse(ChatTemplate);
            return _template.Render(messages, addGenerationPrompt, BosToken, EosToken, tools, extra, clock);
        }
        if (TokenToId("<|start|>") is not null && TokenToId("<|channel|>") is not null && TokenToId("<|message|>") is not null)
            return HarmonyFormat.Render(messages, addGenerationPrompt, harmony, tools);
        throw new InvalidOperationException($"{_spec.Path}: the tokenizer has no chat_template in tokenizer_config.json and is not a harmony vocabulary.");
    }

    private string Normalize(string text)
    {
        foreach (NormalizerStep step in _spec.Normalizers)
        {
            text = step switch
            {
                // Our own NFC: string.Normalize does nothing under InvariantGlobalization and follows ICU otherwise.
                NormalizerStep.Nfc => Nfc.Normalize(text),
                NormalizerStep.Prepend p => text.Length == 0 ? text : p.Text + text,
                NormalizerStep.Replace r => text.Replace(r.Pattern, r.Content, StringComparison.Ordinal),
                _ => throw new InvalidOperationException(step.ToString()),
            };
        }
        return text;
    }

    private void EncodeSegment(string segment, bool atTextStart, List<int> ids)
    {
        if (segment.Length == 0) return;
        var pieces = new List<string> { segment };
        var next = new List<string>();
        var spans = new List<(int Start, int Length)>();
        foreach (PreTokenizerStep step in _spec.PreTokenizers)
        {
            next.Clear();
            for (int p = 0; p < pieces.Count; p++)
            {
                string piece = pieces[p];
                switch (step)
                {
                    case PreTokenizerStep.Split split:
                        spans.Clear();
                        split.Regex.Split(piece, 0, piece.Length, spans);
                        foreach (var (s, l) in spans) next.Add(piece.Substring(s, l));
                        break;
                    case PreTokenizerStep.ByteLevel bl:
                        if (bl.AddPrefixSpace && !piece.StartsWith(' ')) piece = " " + piece;
                        if (bl.Regex is null) next.Add(piece);
                        else
                        {
                            spans.Clear();
                            bl.Regex.Split(piece, 0, piece.Length, spans);
                            foreach (var (s, l) in spans) next.Add(piece.Substring(s, l));
                        }
                        break;
                    case PreTokenizerStep.Metaspace ms:
                        piece = piece.Replace(" ", ms.Replacement, StringComparison.Ordinal);
                        bool prepend = ms.PrependScheme == "always" || (ms.PrependScheme == "first" && atTextStart && p == 0);
                        if (prepend && !piece.StartsWith(ms.Replacement, StringComparison.Ordinal)) piece = ms.Replacement + piece;
                        if (!ms.SplitWords) next.Add(piece);
                        else SplitBefore(piece, ms.Replacement, next);
                        break;
                }
            }
            (pieces, next) = (next, pieces);
        }
        foreach (string piece in pieces) EncodePiece(piece, ids);
    }

    // Metaspace's split: each word starts at a replacement character and keeps it.
    private static void SplitBefore(string piece, string marker, List<string> output)
    {
        int start = 0;
        for (int i = piece.IndexOf(marker, 1, StringComparison.Ordinal); i > 0; i = piece.IndexOf(marker, i + marker.Length, StringComparison.Ordinal))
        {
            output.Add(piece[start..i]);
            start = i;
        }
        if (start < piece.Length) output.Add(piece[start..]);
    }

    private void EncodePiece(string piece, List<int> ids)
    {
        if (piece.Length == 0) return;
        if (_spec.IgnoreMerges && _vocab.TryGetValue(_spec.ByteLevelModel ? ByteLevelAlphabet.Spell(piece) : piece, out int whole))
        {
            ids.Add(whole);
            return;
        }
        if (!_spec.ByteFallback)
        {
            ids.AddRange(_bpe.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
            return;
        }
        // Byte fallback: a character the vocabulary lacks becomes its UTF-8 bytes as <0xXX> tokens. No merge
        // involves a byte token, so the runs of known characters between them merge as they would in one word.
        int run = 0;
        for (int i = 0; i < piece.Length;)
        {
            int width = char.IsHighSurrogate(piece[i]) && i + 1 < piece.Length && char.IsLowSurrogate(piece[i + 1]) ? 2 : 1;
            if (!_vocab.ContainsKey(piece.Substring(i, width)))
            {
                if (i > run) ids.AddRange(_bpe.EncodeToIds(piece[run..i], considerPreTokenization: false, considerNormalization: false));
                foreach (byte b in Encoding.UTF8.GetBytes(piece.Substring(i, width)))
                {
                    int id = _byteIds[b];
                    if (id < 0)
                    {
                        id = _spec.UnknownToken is { } unk && _vocab.TryGetValue(unk, out int u) ? u
                            : throw new InvalidDataException($"{_spec.Path}: model.vocab has no <0x{b:X2}> byte token for byte fallback and no unk_token.");
                    }
                    ids.Add(id);
                }
                run = i + width;
            }
            i += width;
        }
        if (run < piece.Length) ids.AddRange(_bpe.EncodeToIds(piece[run..], considerPreTokenization: false, considerNormalization: false));
    }

    /// <summary>Added tokens first, leftmost then longest, as Hugging Face's added vocabulary matches them.</summary>
    private static List<(int Start, int Length, AddedToken? Added)> SplitAdded(string text, int offset, int length, Dictionary<char, AddedToken[]> added)
    {
        var parts = new List<(int, int, AddedToken?)>();
        int pos = offset, end = offset + length, plain = offset;
        while (pos < end && added.Count > 0)
        {
            AddedToken? hit = null;
            foreach (AddedToken a in added.TryGetValue(text[pos], out AddedToken[]? candidates) ? candidates : [])
            {
                if (string.CompareOrdinal(text, pos, a.Content, 0, a.Content.Length) == 0 && pos + a.Content.Length <= end
                    && (!a.SingleWord || IsWordBoundary(text, pos, pos + a.Content.Length)))
                {
                    hit = a;
                    break; // sorted longest first
                }
            }
            if (hit is null)
            {
                pos++;
                continue;
            }
            int tokenStart = pos, tokenEnd = pos + hit.Content.Length;
            if (hit.LStrip) while (tokenStart > plain && char.IsWhiteSpace(text[tokenStart - 1])) tokenStart--;
            if (hit.RStrip) while (tokenEnd < end && char.IsWhiteSpace(text[tokenEnd])) tokenEnd++;
            if (tokenStart > plain) parts.Add((plain, tokenStart - plain, null));
            parts.Add((tokenStart, tokenEnd - tokenStart, hit));
            pos = plain = tokenEnd;
        }
        if (plain < end) parts.Add((plain, end - plain, null));
        return parts;
    }

    private static bool IsWordBoundary(string text, int start, int end) =>
        (start == 0 || !char.IsLetterOrDigit(text[start - 1])) && (end == text.Length || !char.IsLetterOrDigit(text[end]));

    private static Dictionary<char, AddedToken[]> SortedForMatching(List<AddedToken> tokens)
    {
        var byFirst = new Dictionary<char, List<AddedToken>>();
        foreach (AddedToken a in tokens)
        {
            if (!byFirst.TryGetValue(a.Content[0], out List<AddedToken>? list)) byFirst[a.Content[0]] = list = [];
            list.Add(a);
        }
        var sorted = new Dictionary<char, AddedToken[]>(byFirst.Count);
        foreach (var (first, list) in byFirst)
        {
            // stable, so equal lengths keep file order
            sorted[first] = [.. list.OrderByDescending(a => a.Content.Length)];
        }
        return sorted;
    }

    private static string RunDecoders(List<string> tokens, List<DecoderStep> steps)
    {
        foreach (DecoderStep step in steps)
        {
            switch (step)
            {
                case DecoderStep.Replace r:
                    for (int i = 0; i < tokens.Count; i++) tokens[i] = tokens[i].Replace(r.Pattern, r.Content, StringComparison.Ordinal);
                    break;
                case DecoderStep.ByteFallback:
                    tokens = FuseBytes(tokens);
                    break;
                case DecoderStep.Fuse:
                    tokens = [string.Concat(tokens)];
                    break;
                case DecoderStep.Strip s:
                    for (int i = 0; i < tokens.Count; i++) tokens[i] = Strip(tokens[i], s);
                    break;
                case DecoderStep.Metaspace m:
                    for (int i = 0; i < tokens.Count; i++)
                    {
                        string t = tokens[i].Replace(m.Replacement, " ", StringComparison.Ordinal);
                        tokens[i] = i == 0 && m.StripFirstSpace && t.StartsWith(' ') ? t[1..] : t;
                    }
                    break;
            }
        }
        return string.Concat(tokens);
    }

    // Runs of <0xXX> tokens become the text of their bytes; bytes that are not valid UTF-8 become one U+FFFD each.
    private static List<string> FuseBytes(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        var bytes = new List<byte>();
        foreach (string t in tokens)
        {
            if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                && byte.TryParse(t.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b))
            {
                bytes.Add(b);
                continue;
            }
            Flush(bytes, output);
            output.Add(t);
        }
        Flush(bytes, output);
        return output;

        static void Flush(List<byte> bytes, List<string> output)
        {
            if (bytes.Count == 0) return;
            try
            {
                output.Add(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                output.Add(new string('\uFFFD', bytes.Count));
            }
            bytes.Clear();
        }
    }

    private static string Strip(string token, DecoderStep.Strip s)
    {
        int start = 0, stop = token.Length;
        for (int k = 0; k < s.Start && token.AsSpan(start).StartsWith(s.Content, StringComparison.Ordinal); k++) start += s.Content.Length;
        for (int k = 0; k < s.Stop && stop - s.Content.Length >= start && token.AsSpan(start, stop - start).EndsWith(s.Content, StringComparison.Ordinal); k++) stop -= s.Content.Length;
        return token[start..stop];
    }

    private void ReadConfigs(string folder)
    {
        string config = Path.Combine(folder, "tokenizer_config.json");
        if (File.Exists(config))
        {
            using JsonDocument doc = ParseJson(config);
            JsonElement root = doc.RootElement;
            BosToken = TokenString(root, "bos_token", config);
            EosToken = TokenString(root, "eos_token", config);
            PadToken = TokenString(root, "pad_token", config);
            if (root.TryGetProperty("chat_template", out JsonElement ct))
            {
                ChatTemplate = ct.ValueKind switch
                {
                    JsonValueKind.String => ct.GetString(),
                    JsonValueKind.Array => NamedTemplate(ct, config),
                    JsonValueKind.Null => null,
                    _ => throw new InvalidDataException($"{config}: chat_template is {ct.ValueKind}; expected a string or a list of {{name, template}}."),
                };
            }
        }
        var stops = new List<int>();
        if (EosToken is not null && TokenToId(EosToken) is int eos) stops.Add(eos);
        string generation = Path.Combine(folder, "generation_config.json");
        if (File.Exists(generation))
        {
            using JsonDocument doc = ParseJson(generation);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("eos_token_id", out JsonElement e))
            {
                foreach (JsonElement id in e.ValueKind == JsonValueKind.Array ? [.. e.EnumerateArray()] : new[] { e })
                {
                    if (!id.TryGetInt32(out int v)) throw new InvalidDataException($"{generation}: eos_token_id '{id}' is not an integer.");
                    if (!stops.Contains(v)) stops.Add(v);
                }
            }
        }
        StopTokenIds = stops;
    }

    private static JsonDocument ParseJson(string path)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e);
        }
    }

    // Written either as the token's text or as an AddedToken object with its text in "content".
    private static string? TokenString(JsonElement root, string name, string path)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(name, out JsonElement v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out JsonElement c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => throw new InvalidDataException($"{path}: {name} is {v.ValueKind}; expected a string or an object with content."),
        };
    }

    private static string? NamedTemplate(JsonElement list, string path)
    {
        string? first = null;
        foreach (JsonElement t in list.EnumerateArray())
        {
            if (t.ValueKind != JsonValueKind.Object || !t.TryGetProperty("template", out JsonElement tpl) || tpl.ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"{path}: chat_template entry is not {{name, template}}.");
            first ??= tpl.GetString();
            if (t.TryGetProperty("name", out JsonElement n) && n.ValueKind == JsonValueKind.String && n.GetString() == "default") return tpl.GetString();
        }
        return first;
    }
}
