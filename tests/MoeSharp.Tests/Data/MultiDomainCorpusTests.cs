using System.Text.RegularExpressions;
using MoeSharp.Data;
using MoeSharp.Tensors;

namespace MoeSharp.Tests.Data;

public class MultiDomainCorpusTests
{
    // One corpus of the default size, shared by the read-only tests (generating it takes ~0.1 s).
    private static readonly MultiDomainCorpus Default = MultiDomainCorpus.Generate();

    private static string TextOf(MultiDomainCorpus c, (Domain Domain, int Start, int Length) s) => c.Text.Substring(s.Start, s.Length);

    private static IEnumerable<string> SamplesOf(MultiDomainCorpus c, Domain d) =>
        c.Samples.Where(s => s.Domain == d).Select(s => TextOf(c, s));

    [Fact]
    public void SameSeedSameCorpusOtherSeedOtherCorpus()
    {
        var a = MultiDomainCorpus.Generate(seed: 42, samples: 500);
        var b = MultiDomainCorpus.Generate(seed: 42, samples: 500);
        var c = MultiDomainCorpus.Generate(seed: 43, samples: 500);
        Assert.Equal(a.Text, b.Text);
        Assert.Equal(a.CharDomains, b.CharDomains);
        Assert.Equal(a.Samples, b.Samples);
        Assert.NotEqual(a.Text, c.Text);
        Assert.Equal(Default.Text, MultiDomainCorpus.Generate(1, 20000).Text); // the defaults are seed 1, 20000 samples
    }

    [Fact]
    public void SampleIsDeterministicInItsGenerator()
    {
        foreach (var d in Enum.GetValues<Domain>())
            Assert.Equal(MultiDomainCorpus.Sample(d, new Rng(9)), MultiDomainCorpus.Sample(d, new Rng(9)));
    }

    [Fact]
    public void EveryDomainHasAnEqualShareOfSamplesAndARoughlyEqualShareOfCharacters()
    {
        int domains = Enum.GetValues<Domain>().Length;
        Assert.Equal(domains, MultiDomainCorpus.DomainNames.Count);
        var small = MultiDomainCorpus.Generate(3, 1003); // 1003 = 5·200 + 3: the first three domains get 201
        for (int d = 0; d < domains; d++)
            Assert.Equal(d < 3 ? 201 : 200, small.Samples.Count(s => s.Domain == (Domain)d));
        for (int d = 0; d < domains; d++)
        {
            Assert.Equal(20000 / domains, Default.Samples.Count(s => s.Domain == (Domain)d));
            double share = (double)Default.CharDomains.Count(x => x == (Domain)d) / Default.Text.Length;
            Assert.InRange(share, 0.15, 0.25);
        }
    }

    [Fact]
    public void DomainsAreInterleavedNotInBlocks()
    {
        // In a uniform shuffle of five equal classes, neighbours differ with probability ~0.8.
        int changes = 0;
        for (int i = 1; i < Default.Samples.Count; i++)
            if (Default.Samples[i].Domain != Default.Samples[i - 1].Domain) changes++;
        Assert.InRange(changes / (double)(Default.Samples.Count - 1), 0.75, 0.85);
        // Nor a fixed cycle: the first 50 samples are not the pattern 0,1,2,3,4,0,1,...
        Assert.Contains(Enumerable.Range(0, 50), i => Default.Samples[i].Domain != (Domain)(i % 5));
    }

    [Fact]
    public void ArithmeticIsCorrect()
    {
        var equation = new Regex(@"^(\d+)([-+*])(\d+)=(-?\d+)$");
        int count = 0;
        var ops = new HashSet<char>();
        foreach (string line in SamplesOf(Default, Domain.Arithmetic))
        {
            foreach (string eq in line.TrimEnd('\n').Split(' '))
            {
                var m = equation.Match(eq);
                Assert.True(m.Success, $"'{eq}' is not an equation");
                long a = long.Parse(m.Groups[1].Value), b = long.Parse(m.Groups[3].Value), r = long.Parse(m.Groups[4].Value);
                char op = m.Groups[2].Value[0];
                ops.Add(op);
                long expected = op switch { '+' => a + b, '-' => a - b, _ => a * b };
                Assert.True(expected == r, $"'{eq}' is wrong: expected {expected}");
                count++;
            }
        }
        Assert.Equal(new[] { '*', '+', '-' }, ops.Order());
        Assert.True(count >= 3 * 4000, $"only {count} equations");
    }

    [Fact]
    public void CodeBracketsBalanceAndNest()
    {
        int maxDepth = 0;
        foreach (string line in SamplesOf(Default, Domain.Code))
        {
            var open = new Stack<char>();
            foreach (char c in line)
            {
                if (c is '(' or '[' or '{') open.Push(c);
                else if (c is ')' or ']' or '}')
                {
                    char expected = c switch { ')' => '(', ']' => '[', _ => '{' };
                    Assert.True(open.Count > 0 && open.Pop() == expected, $"unbalanced '{c}' in {line}");
                }
                maxDepth = Math.Max(maxDepth, open.Count);
            }
            Assert.Empty(open);
            Assert.Matches(@"^[a-z0-9(){}\[\],;=]+\n$", line);
        }
        Assert.True(maxDepth >= 3, $"code never nests deeper than {maxDepth}");
    }

    [Fact]
    public void RecordsEnglishAndDnaHaveTheirShapes()
    {
        foreach (string line in SamplesOf(Default, Domain.Records))
            Assert.Matches(@"^name=[a-z]+;age=\d+;city=[a-z]+;(job=[a-z]+;)?\n$", line);
        foreach (string line in SamplesOf(Default, Domain.English))
        {
            Assert.Matches(@"^[a-z]+( [a-z]+)+\.\n$", line);
            Assert.DoesNotMatch(@"\ba [aeiou]", line); // "an" before a vowel
        }
        int withRepeat = 0;
        foreach (string line in SamplesOf(Default, Domain.Dna))
        {
            Assert.Matches(@"^[ACGT]{16,}\n$", line);
            if (Regex.IsMatch(line, "(TATA|GATC|CAG|GGCC|ACGTAC|TTAGGG){2}")) withRepeat++;
        }
        Assert.InRange(withRepeat, 4000 / 2, 4000);
    }

    [Fact]
    public void SamplesTileTheTextAndCharDomainsFollowThem()
    {
        Assert.Equal(Default.Text.Length, Default.CharDomains.Length);
        int at = 0;
        foreach (var s in Default.Samples)
        {
            Assert.Equal(at, s.Start);
            string line = TextOf(Default, s);
            Assert.EndsWith("\n", line);
            Assert.Equal(1, line.Count(c => c == '\n'));
            for (int i = s.Start; i < s.Start + s.Length; i++)
                Assert.Equal(s.Domain, Default.CharDomains[i]);
            at += s.Length;
        }
        Assert.Equal(Default.Text.Length, at);
    }

    [Fact]
    public void AlphabetIsSmallPrintableAndExactlyWhatTheGeneratorsEmit()
    {
        string alphabet = MultiDomainCorpus.Alphabet;
        Assert.InRange(alphabet.Length, 40, 64);
        Assert.All(alphabet, c => Assert.True(c == '\n' || c is >= ' ' and <= '~', $"U+{(int)c:X4} is not printable ASCII"));
        Assert.Equal(alphabet, string.Concat(Default.Text.Distinct().Order()));
        Assert.Equal(alphabet.Length, new CharTokenizer(alphabet).VocabSize);
    }

    [Fact]
    public void SplitKeepsWholeSamplesInOrder()
    {
        var (train, validation) = Default.Split(0.9);
        Assert.Equal(18000, train.Samples.Count);
        Assert.Equal(2000, validation.Samples.Count);
        Assert.Equal(Default.Text, train.Text + validation.Text);
        Assert.Equal(Default.CharDomains, train.CharDomains.Concat(validation.CharDomains));
        Assert.Equal(0, validation.Samples[0].Start);
        Assert.Equal(TextOf(Default, Default.Samples[18000]), TextOf(validation, validation.Samples[0]));
        Assert.EndsWith("\n", train.Text);
        for (int i = 0; i < validation.Samples.Count; i++)
            Assert.Equal(Default.Samples[18000 + i].Domain, validation.Samples[i].Domain);
        var (h, t) = MultiDomainCorpus.Generate(5, 10).Split(0.5);
        Assert.Equal((5, 5), (h.Samples.Count, t.Samples.Count));
    }

    [Fact]
    public void SizesFollowTheSampleCountAndBadArgumentsAreRefused()
    {
        var c = MultiDomainCorpus.Generate(2, 100);
        Assert.Equal(100, c.Samples.Count);
        Assert.Equal(c.Samples.Sum(s => s.Length), c.Text.Length);
        Assert.InRange(c.Text.Length, 100 * 25, 100 * 45);
        Assert.InRange(Default.Text.Length, 20000 * 30, 20000 * 40);
        Assert.Throws<ArgumentOutOfRangeException>(() => MultiDomainCorpus.Generate(1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.Split(1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.Split(double.NaN));
        Assert.Throws<ArgumentException>(() => MultiDomainCorpus.Generate(1, 1).Split(0.9)); // one side would be empty
    }
}
