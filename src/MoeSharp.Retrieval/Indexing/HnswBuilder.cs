using System.Runtime.InteropServices;

namespace MoeSharp.Retrieval.Indexing;

/// <summary>
/// Inserts nodes one at a time (Malkov and Yashunin, algorithms 1, 2 and 4: the neighbour-selection heuristic keeps a
/// candidate only if it is closer to the new node than to every neighbour already kept), then lays the graph out as
/// the blob <see cref="HnswIndex"/> reads.
/// </summary>
internal sealed class HnswBuilder
{
    private readonly float[] _vectors; // [N, D]
    private readonly int _d;
    private readonly HnswOptions _o;
    private readonly int _n;
    private readonly int[] _levels;          // [N]
    private readonly List<int>[][] _links;   // [N][level] neighbour lists
    private readonly int[] _visited;         // [N] generation stamps
    private int _generation;
    private int _entry = -1;
    private int _maxLevel;

    public HnswBuilder(float[] vectors, int dimension, HnswOptions options)
    {
        _vectors = vectors;
        _d = dimension;
        _o = options;
        _n = vectors.Length / dimension;
        _levels = new int[_n];
        _links = new List<int>[_n][];
        _visited = new int[_n];
        var rng = new Random(unchecked((int)options.Seed));
        double mL = 1 / Math.Log(options.M);
        for (int i = 0; i < _n; i++)
            _levels[i] = Math.Min(32, (int)(-Math.Log(1 - rng.NextDouble()) * mL));
    }

    private ReadOnlySpan<float> V(int i) => new(_vectors, i * _d, _d);

    private float Sim(int a, int b) => TensorPrimitives.Dot(V(a), V(b));

    public byte[] Build()
    {
        for (int i = 0; i < _n; i++) Insert(i);
        return Layout();
    }

    private void Insert(int q)
    {
        int level = _levels[q];
        _links[q] = new List<int>[level + 1];
        for (int l = 0; l <= level; l++) _links[q][l] = new List<int>(l == 0 ? 2 * _o.M : _o.M);
        if (_entry < 0) { _entry = q; _maxLevel = level; return; }
        int ep = _entry;
        float epSim = Sim(q, ep);
        for (int l = _maxLevel; l > level; l--)
        {
            bool moved = true;
            while (moved)
            {
                moved = false;
                foreach (int nb in _links[ep][l])
                {
                    float s = Sim(q, nb);
                    if (s > epSim) { epSim = s; ep = nb; moved = true; }
                }
            }
        }
        for (int l = Math.Min(level, _maxLevel); l >= 0; l--)
        {
            var found = SearchLayer(q, ep, epSim, _o.EfConstruction, l);
            var chosen = SelectNeighbours(q, found, _o.M);
            _links[q][l].AddRange(chosen);
            int cap = l == 0 ? 2 * _o.M : _o.M;
            foreach (int nb in chosen)
            {
                var list = _links[nb][l];
                list.Add(q);
                if (list.Count > cap) Shrink(nb, list, cap);
            }
            ep = found[0].Doc;
            epSim = found[0].Score;
        }
        if (level > _maxLevel) { _maxLevel = level; _entry = q; }
    }

    /// <summary>Candidates best first.</summary>
    private List<ScoredDoc> SearchLayer(int q, int entry, float entrySim, int ef, int level)
    {
        _generation++;
        var candidates = new PriorityQueue<int, float>();
        var results = new PriorityQueue<int, float>();
        _visited[entry] = _generation;
        candidates.Enqueue(entry, -entrySim);
        results.Enqueue(entry, entrySim);
        while (candidates.TryDequeue(out int c, out float neg))
        {
            results.TryPeek(out _, out float worst);
            if (-neg < worst && results.Count >= ef) break;
            foreach (int nb in _links[c][level])
            {
                if (_visited[nb] == _generation) continue;
                _visited[nb] = _generation;
                float s = Sim(q, nb);
                results.TryPeek(out _, out worst);
                if (results.Count < ef || s > worst)
                {
                    candidates.Enqueue(nb, -s);
                    results.Enqueue(nb, s);
                    if (results.Count > ef) results.Dequeue();
                }
            }
        }
        var list = new List<ScoredDoc>(results.Count);
        while (results.TryDequeue(out int node, out float s)) list.Add(new ScoredDoc(node, s));
        list.Reverse();
        return list;
    }

    /// <summary>The heuristic: walk candidates best first, keep one unless a kept neighbour is more similar to it than q is.</summary>
    private List<int> SelectNeighbours(int q, List<ScoredDoc> candidates, int m)
    {
        var kept = new List<int>(m);
        foreach (var c in candidates)
        {
            if (c.Doc == q) continue;
            bool good = true;
            foreach (int k in kept)
                if (Sim(c.Doc, k) > c.Score) { good = false; break; }
            if (good) kept.Add(c.Doc);
            if (kept.Count == m) break;
        }
        // Fill up with the best of the rejected so that sparse regions keep their degree.
        if (kept.Count < m)
            foreach (var c in candidates)
            {
                if (kept.Count == m) break;
                if (c.Doc != q && !kept.Contains(c.Doc)) kept.Add(c.Doc);
            }
        return kept;
    }

    private void Shrink(int node, List<int> list, int cap)
    {
        var scored = new List<ScoredDoc>(list.Count);
        foreach (int nb in list) scored.Add(new ScoredDoc(nb, Sim(node, nb)));
        scored.Sort((a, b) => b.Score != a.Score ? b.Score.CompareTo(a.Score) : a.Doc.CompareTo(b.Doc));
        var kept = SelectNeighbours(node, scored, cap);
        list.Clear();
        list.AddRange(kept);
    }

    private byte[] Layout()
    {
        int m = _o.M, m0 = 2 * m;
        long upperInts = 0;
        for (int i = 0; i < _n; i++) upperInts += (long)_levels[i] * (1 + m);
        long ints = 8 + 2L * _n + (long)_n * _d + (long)_n * (1 + m0) + upperInts;
        var blob = GC.AllocateArray<byte>(checked((int)(ints * 4)), pinned: true);
        var all = MemoryMarshal.Cast<byte, int>(blob.AsSpan());
        all[0] = 0x57534E48;
        all[1] = 1;
        all[2] = _n;
        all[3] = _d;
        all[4] = m;
        all[5] = m0;
        all[6] = _maxLevel;
        all[7] = Math.Max(_entry, 0);
        var levels = all.Slice(8, _n);
        var offsets = all.Slice(8 + _n, _n);
        MemoryMarshal.Cast<float, int>(_vectors.AsSpan()).CopyTo(all.Slice(8 + 2 * _n));
        var level0 = all.Slice(8 + 2 * _n + _n * _d, _n * (1 + m0));
        var upper = all[(8 + 2 * _n + _n * _d + _n * (1 + m0))..];
        int offset = 0;
        for (int i = 0; i < _n; i++)
        {
            levels[i] = _levels[i];
            offsets[i] = _levels[i] > 0 ? offset : -1;
            Write(level0.Slice(i * (1 + m0), 1 + m0), _links[i][0]);
            for (int l = 1; l <= _levels[i]; l++)
            {
                Write(upper.Slice(offset, 1 + m), _links[i][l]);
                offset += 1 + m;
            }
        }
        return blob;

        static void Write(Span<int> block, List<int> links)
        {
            block[0] = links.Count;
            for (int j = 0; j < links.Count; j++) block[1 + j] = links[j];
        }
    }
}
