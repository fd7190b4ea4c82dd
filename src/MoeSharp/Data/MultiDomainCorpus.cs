using System.Text;
using MoeSharp.Tensors;

namespace MoeSharp.Data;

/// <summary>The kinds of text in <see cref="MultiDomainCorpus"/>; each has its own generator and structure.</summary>
public enum Domain
{
    /// <summary>Lines of integer equations such as <c>12+30=42</c>.</summary>
    Arithmetic,

    /// <summary>key=value records (name, age, city, job) separated by semicolons.</summary>
    Records,

    /// <summary>Sentences from a small English-like grammar with nested noun phrases.</summary>
    English,

    /// <summary>Bracketed code-like statements with identifiers and nesting.</summary>
    Code,

    /// <summary>ACGT sequences with recurring motifs (TATA, GATC, ...).</summary>
    Dna,
}

/// <summary>
/// A built-in training corpus of five clearly different kinds of one-line samples, generated from a seed, so that
/// <c>moe train</c> works offline and expert specialisation can be measured against a known label per character.
/// Each domain gets an equal number of samples (±1), shuffled so that a training window mixes domains, and the
/// generators aim at similar line lengths (about 30 characters) so that the domains' character shares are close too.
/// </summary>
public sealed class MultiDomainCorpus
{
    private readonly (Domain Domain, int Start, int Length)[] _samples;

    private MultiDomainCorpus(string text, Domain[] charDomains, (Domain, int, int)[] samples)
    {
        Text = text;
        CharDomains = charDomains;
        _samples = samples;
    }

    /// <summary>All samples concatenated; every sample ends with '\n'.</summary>
    public string Text { get; }

    /// <summary>[Text.Length]: the domain of the sample each character belongs to, its '\n' included.</summary>
    public Domain[] CharDomains { get; }

    /// <summary>Every sample's domain and its place in <see cref="Text"/>, in order; they tile the text exactly.</summary>
    public IReadOnlyList<(Domain Domain, int Start, int Length)> Samples => _samples;

    /// <summary>Lower-case names of the domains, indexed by <see cref="Domain"/>; diagnostics files use these.</summary>
    public static IReadOnlyList<string> DomainNames { get; } = ["arithmetic", "records", "english", "code", "dna"];

    /// <summary>
    /// Every character any generator can emit, in ordinal order. A tokenizer built from this covers any corpus and
    /// any split, whatever the seed, which one built from a training split's text would not promise.
    /// </summary>
    public static string Alphabet => AlphabetChars;

    /// <summary>
    /// Generates <paramref name="samples"/> samples: samples / 5 per domain (the first samples % 5 domains get one
    /// more), in an order shuffled by the same seeded generator that then draws each sample.
    /// </summary>
    public static MultiDomainCorpus Generate(ulong seed = 1, int samples = 20000)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(samples);
        var rng = new Rng(seed);
        int domains = DomainNames.Count;
        var order = new Domain[samples];
        for (int i = 0; i < samples; i++) order[i] = (Domain)(i % domains);
        rng.Shuffle(order.AsSpan());

        var text = new StringBuilder(samples * 32);
        var spans = new (Domain, int, int)[samples];
        for (int i = 0; i < samples; i++)
        {
            string line = Sample(order[i], rng);
            spans[i] = (order[i], text.Length, line.Length);
            text.Append(line);
        }
        var charDomains = new Domain[text.Length];
        foreach (var (d, start, length) in spans) charDomains.AsSpan(start, length).Fill(d);
        return new MultiDomainCorpus(text.ToString(), charDomains, spans);
    }

    /// <summary>
    /// Splits by whole samples: the first ⌊n·trainFraction⌋ samples train, the rest validate, so no sample is cut
    /// in two and validation text is never seen in training.
    /// </summary>
    public (MultiDomainCorpus Train, MultiDomainCorpus Validation) Split(double trainFraction = 0.9)
    {
        if (trainFraction is <= 0 or >= 1 || double.IsNaN(trainFraction))
            throw new ArgumentOutOfRangeException(nameof(trainFraction), $"The training fraction must be in (0,1), got {trainFraction}.");
        int head = (int)(_samples.Length * trainFraction);
        if (head == 0 || head == _samples.Length)
            throw new ArgumentException($"Splitting {_samples.Length} samples at {trainFraction} leaves one side empty.", nameof(trainFraction));
        return (Slice(0, head), Slice(head, _samples.Length - head));
    }

    private MultiDomainCorpus Slice(int first, int count)
    {
        int start = _samples[first].Start;
        var last = _samples[first + count - 1];
        int length = last.Start + last.Length - start;
        var spans = new (Domain, int, int)[count];
        for (int i = 0; i < count; i++)
        {
            var s = _samples[first + i];
            spans[i] = (s.Domain, s.Start - start, s.Length);
        }
        return new MultiDomainCorpus(Text.Substring(start, length), CharDomains[start..(start + length)], spans);
    }

    /// <summary>One sample of domain <paramref name="d"/>: a single line ending with '\n'.</summary>
    public static string Sample(Domain d, Rng rng)
    {
        var sb = new StringBuilder(48);
        switch (d)
        {
            case Domain.Arithmetic: Arithmetic(sb, rng); break;
            case Domain.Records: Record(sb, rng); break;
            case Domain.English: Sentence(sb, rng); break;
            case Domain.Code: Code(sb, rng); break;
            case Domain.Dna: Dna(sb, rng); break;
            default: throw new ArgumentOutOfRangeException(nameof(d), d, "Unknown domain.");
        }
        return sb.Append('\n').ToString();
    }

    // ---- Arithmetic: "37+45=82 9*12=108 50-73=-23", every equation exact. Three or four equations a line keep
    // the line about as long as the other domains' (one equation alone is about 8 characters).

    private static void Arithmetic(StringBuilder sb, Rng rng)
    {
        int equations = 3 + rng.NextInt(2);
        for (int i = 0; i < equations; i++)
        {
            if (i > 0) sb.Append(' ');
            int a = rng.NextInt(100), op = rng.NextInt(3);
            // One factor below 20 keeps products under 2000: short, and a table small enough for a small model to learn.
            int b = op == 2 ? rng.NextInt(20) : rng.NextInt(100);
            (char sign, int result) = op switch { 0 => ('+', a + b), 1 => ('-', a - b), _ => ('*', a * b) };
            sb.Append(a).Append(sign).Append(b).Append('=').Append(result);
        }
    }

    // ---- Records: "name=alice;age=34;city=oslo;job=baker;" with keys in a fixed order and an optional last field.

    private static readonly string[] Names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "olivia", "peggy", "quinn", "rupert", "sybil", "trent", "victor", "wendy", "zoe"];
    private static readonly string[] Cities = ["oslo", "paris", "lima", "quito", "kyiv", "tokyo", "cairo", "delhi", "rome", "bern", "vienna", "dublin", "zagreb", "hanoi", "jakarta"];
    private static readonly string[] Jobs = ["baker", "pilot", "nurse", "judge", "clerk", "miner", "tailor", "farmer", "welder", "vet"];

    private static void Record(StringBuilder sb, Rng rng)
    {
        sb.Append("name=").Append(Pick(Names, rng)).Append(';');
        sb.Append("age=").Append(18 + rng.NextInt(70)).Append(';');
        sb.Append("city=").Append(Pick(Cities, rng)).Append(';');
        if (rng.NextInt(2) == 0) sb.Append("job=").Append(Pick(Jobs, rng)).Append(';');
    }

    // ---- English: S → NP VP "." ; NP → Det [Adj] Noun [Prep NP] ; VP → Verb NP. "a" becomes "an" before a vowel.

    private static readonly string[] Determiners = ["the", "a", "every", "some", "that"];
    private static readonly string[] Adjectives = ["small", "red", "big", "old", "quiet", "happy", "green", "lazy", "brave", "tiny", "wet", "yellow"];
    private static readonly string[] Nouns = ["cat", "dog", "ball", "bird", "child", "tree", "house", "fox", "river", "apple", "king", "box"];
    private static readonly string[] Verbs = ["sees", "likes", "finds", "chases", "holds", "wants", "follows", "paints", "jumps over", "knows"];
    private static readonly string[] Prepositions = ["near", "under", "behind", "with", "on"];

    private static void Sentence(StringBuilder sb, Rng rng)
    {
        NounPhrase(sb, rng, nest: true);
        sb.Append(' ').Append(Pick(Verbs, rng)).Append(' ');
        NounPhrase(sb, rng, nest: true);
        sb.Append('.');
    }

    private static void NounPhrase(StringBuilder sb, Rng rng, bool nest)
    {
        string det = Pick(Determiners, rng);
        string? adj = rng.NextInt(2) == 0 ? Pick(Adjectives, rng) : null;
        string noun = Pick(Nouns, rng);
        if (det == "a" && "aeiou".Contains((adj ?? noun)[0])) det = "an";
        sb.Append(det).Append(' ');
        if (adj is not null) sb.Append(adj).Append(' ');
        sb.Append(noun);
        if (nest && rng.NextInt(8) == 0)
        {
            sb.Append(' ').Append(Pick(Prepositions, rng)).Append(' ');
            NounPhrase(sb, rng, nest: false);
        }
    }

    // ---- Code: statements "f(x[1]){g(y);}" or "x=h(y,2);" over a few identifiers, nested at most three deep, so
    // every bracket closes in the same line and matching them needs a stack.

    private static readonly string[] Identifiers = ["f", "g", "h", "x", "y", "z", "i", "n", "k", "buf", "len", "sum", "map", "get", "put"];

    private static void Code(StringBuilder sb, Rng rng)
    {
        int statements = 2 + rng.NextInt(2);
        for (int s = 0; s < statements; s++) Statement(sb, rng, depth: 0);
    }

    private static void Statement(StringBuilder sb, Rng rng, int depth)
    {
        switch (depth < 2 ? rng.NextInt(3) : 1 + rng.NextInt(2))
        {
            case 0: // call with a block: f(x){...}
                Call(sb, rng, depth + 1);
                sb.Append('{');
                int inner = 1 + rng.NextInt(2);
                for (int s = 0; s < inner; s++) Statement(sb, rng, depth + 1);
                sb.Append('}');
                break;
            case 1:
                Call(sb, rng, depth + 1);
                sb.Append(';');
                break;
            default:
                sb.Append(Pick(Identifiers, rng)).Append('=');
                Expression(sb, rng, depth + 1);
                sb.Append(';');
                break;
        }
    }

    private static void Expression(StringBuilder sb, Rng rng, int depth)
    {
        switch (depth < 3 ? rng.NextInt(4) : rng.NextInt(2))
        {
            case 0: sb.Append(Pick(Identifiers, rng)); break;
            case 1: sb.Append(rng.NextInt(10)); break;
            case 2: // index: x[1] or x[i]
                sb.Append(Pick(Identifiers, rng)).Append('[');
                Expression(sb, rng, depth + 1);
                sb.Append(']');
                break;
            default: Call(sb, rng, depth + 1); break;
        }
    }

    private static void Call(StringBuilder sb, Rng rng, int depth)
    {
        sb.Append(Pick(Identifiers, rng)).Append('(');
        int args = rng.NextInt(3);
        for (int a = 0; a < args; a++)
        {
            if (a > 0) sb.Append(',');
            Expression(sb, rng, depth + 1);
        }
        sb.Append(')');
    }

    // ---- DNA: 16–32 bases (a motif may overshoot), where a third of the draws insert a known motif repeated two
    // to four times (tandem repeats), so the domain has learnable structure beyond its four-letter alphabet.

    private static readonly string[] Motifs = ["TATA", "GATC", "CAG", "GGCC", "ACGTAC", "TTAGGG"];

    private static void Dna(StringBuilder sb, Rng rng)
    {
        int target = 16 + rng.NextInt(17);
        while (sb.Length < target)
        {
            if (rng.NextInt(3) == 0)
            {
                string motif = Pick(Motifs, rng);
                for (int r = 2 + rng.NextInt(3); r > 0; r--) sb.Append(motif);
            }
            else
            {
                sb.Append("ACGT"[rng.NextInt(4)]);
            }
        }
    }

    private static string Pick(string[] choices, Rng rng) => choices[rng.NextInt(choices.Length)];

    // Declared after the word lists it reads: static initialisers run in textual order.
    private static readonly string AlphabetChars = BuildAlphabet();

    private static string BuildAlphabet()
    {
        var chars = new SortedSet<char>("0123456789+-*= ;.(){}[],ACGT\n");
        string[][] lists = [Names, Cities, Jobs, Determiners, Adjectives, Nouns, Verbs, Prepositions, Identifiers, Motifs, ["name", "age", "city", "job", "an"]];
        foreach (var list in lists)
            foreach (string word in list) chars.UnionWith(word);
        return string.Concat(chars);
    }
}
