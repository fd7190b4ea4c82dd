using MoeSharp.Retrieval.Data;

namespace MoeSharp.Retrieval.Tests;

/// <summary>
/// A deterministic stand-in for a sentence encoder: hashed bag of tokens, unit length. It lets the storage and
/// gate tests run in milliseconds; the real MiniLM encoder has its own test.
/// </summary>
internal sealed class HashEncoder : ITextEncoder
{
    public int Dimension => 32;

    public string Name => "hash-32";

    public float[] Encode(IReadOnlyList<string> texts)
    {
        var v = new float[texts.Count * Dimension]; // [N, D]
        for (int i = 0; i < texts.Count; i++)
        {
            var row = v.AsSpan(i * Dimension, Dimension);
            foreach (var t in TextNormalizer.Tokens(texts[i]))
            {
                uint h = 2166136261;
                foreach (char c in t) h = (h ^ c) * 16777619;
                row[(int)(h % (uint)Dimension)] += (h & 0x10000) != 0 ? 1 : -1;
            }
            float n = System.Numerics.Tensors.TensorPrimitives.Norm(row);
            if (n > 0) System.Numerics.Tensors.TensorPrimitives.Divide(row, n, row);
            else row[0] = 1;
        }
        return v;
    }
}

/// <summary>A ten-document corpus with a small part/kind graph, shared by the storage and retriever tests.</summary>
internal static class TestCorpus
{
    public static Corpus Make()
    {
        var c = new Corpus();
        void Doc(string id, string text, params string[] names) =>
            c.Documents.Add(new Document(id, text, names.Select(n => new EntityName(n, 0)).ToArray()));
        Doc("car", "car, automobile: a motor vehicle with four wheels", "car", "automobile");
        Doc("wheel", "wheel: a simple machine consisting of a circular frame", "wheel");
        Doc("engine", "engine: motor that converts thermal energy to mechanical work", "engine");
        Doc("brake", "brake: a restraint used to slow or stop a vehicle", "brake");
        Doc("cab", "cab, taxi: a car driven by a person whose job is to take passengers", "cab", "taxi");
        Doc("meter", "taximeter: a meter in a taxi that registers the fare", "taximeter");
        Doc("dog", "dog: a member of the genus Canis that has been domesticated", "dog");
        Doc("puppy", "puppy: a young dog", "puppy");
        Doc("sea_anemone", "sea anemone: marine polyps that resemble flowers", "sea anemone");
        Doc("anemone", "anemone: any woodland plant of the genus Anemone", "anemone");
        int I(string id) => c.Documents.FindIndex(d => d.Id == id);
        c.Edges.Add(new Edge(I("car"), I("wheel"), "part_meronym"));
        c.Edges.Add(new Edge(I("car"), I("engine"), "part_meronym"));
        c.Edges.Add(new Edge(I("car"), I("brake"), "part_meronym"));
        c.Edges.Add(new Edge(I("car"), I("cab"), "hyponym"));
        c.Edges.Add(new Edge(I("cab"), I("meter"), "part_meronym"));
        c.Edges.Add(new Edge(I("dog"), I("puppy"), "hyponym"));
        c.Queries.Add(new LabeledQuery("graph", "train", "a part of a car", [I("wheel"), I("engine"), I("brake")]));
        c.Queries.Add(new LabeledQuery("keyword", "train", "sea anemone", [I("sea_anemone")]));
        c.Queries.Add(new LabeledQuery("vector", "train", "young dog", [I("puppy")]));
        c.Queries.Add(new LabeledQuery("graph", "test", "a kind of dog", [I("puppy")]));
        c.Queries.Add(new LabeledQuery("keyword", "test", "taximeter", [I("meter")]));
        return c;
    }

    /// <summary>Writes the corpus with <see cref="HashEncoder"/> vectors into a fresh SQLite file under a temp folder.</summary>
    public static string WriteSqlite(string dir)
    {
        var corpus = Make();
        var enc = new HashEncoder();
        string path = Path.Combine(dir, "t.sqlite");
        MoeSharp.Retrieval.Storage.SqliteStore.Write(path, corpus, enc.Encode(corpus.Documents.Select(d => d.Text).ToList()), enc.Dimension, enc.Name);
        return path;
    }
}

/// <summary>A temporary folder deleted at the end of a test.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("moesharp-rag-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
