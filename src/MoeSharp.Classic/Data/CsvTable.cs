using System.Globalization;

namespace MoeSharp.Classic.Data;

/// <summary>
/// A numeric CSV table: one header row, comma separators, every field a number. Loading stops at the first bad
/// field with a message that names the file, the line, the data row and the column, so a user can go straight to it.
/// </summary>
public sealed class CsvTable
{
    private readonly Dictionary<string, int> _index;

    /// <param name="values">[rows, columns] row-major.</param>
    public CsvTable(string source, string[] columns, double[] values)
    {
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(values);
        if (columns.Length == 0) throw new ArgumentException($"{source}: a table needs at least one column.", nameof(columns));
        if (values.Length % columns.Length != 0)
            throw new ArgumentException($"{source}: {values.Length} values do not fill rows of {columns.Length} columns.", nameof(values));
        Source = source;
        Columns = columns;
        Values = values;
        Rows = values.Length / columns.Length;
        _index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < columns.Length; c++)
            if (!_index.TryAdd(columns[c], c))
                throw new InvalidDataException($"{source}: column '{columns[c]}' appears twice (columns {_index[columns[c]] + 1} and {c + 1}).");
    }

    /// <summary>Where the table came from (a file path), for messages.</summary>
    public string Source { get; }

    /// <summary>The column names from the header row, in file order.</summary>
    public string[] Columns { get; }
    /// <summary>Number of data rows (the header not counted).</summary>
    public int Rows { get; }

    /// <summary>[Rows, Columns] row-major.</summary>
    public double[] Values { get; }

    /// <summary>The value at data row <paramref name="row"/> and column <paramref name="column"/>, both from 0.</summary>
    public double this[int row, int column] => Values[row * Columns.Length + column];

    /// <summary>Whether the header has a column named <paramref name="name"/> (case-sensitive).</summary>
    public bool HasColumn(string name) => _index.ContainsKey(name);

    /// <summary>The index of column <paramref name="name"/>; an unknown name is an error listing the columns there are.</summary>
    public int ColumnIndex(string name) => _index.TryGetValue(name, out int c) ? c
        : throw new ArgumentException($"{Source}: no column named '{name}'; the columns are {string.Join(", ", Columns.Select(x => $"'{x}'"))}.");

    /// <summary>[Rows] one column's values.</summary>
    public double[] Column(string name)
    {
        int c = ColumnIndex(name);
        var v = new double[Rows];
        for (int r = 0; r < Rows; r++) v[r] = Values[r * Columns.Length + c];
        return v;
    }

    /// <summary>Reads the CSV file at <paramref name="path"/>; a bad field is an <see cref="InvalidDataException"/> naming the file, line and column.</summary>
    public static CsvTable Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"CSV file '{path}' does not exist.", path);
        using var reader = new StreamReader(path);
        return Parse(reader, path);
    }

    /// <summary>Parses CSV text; <paramref name="source"/> names it in messages.</summary>
    public static CsvTable Parse(TextReader reader, string source)
    {
        string? header = reader.ReadLine();
        int line = 1;
        while (header is not null && header.Trim().Length == 0)
        {
            header = reader.ReadLine();
            line++;
        }
        if (header is null) throw new InvalidDataException($"{source}: the file is empty; expected a header row of column names.");
        var columns = Split(header).Select(Unquote).ToArray();
        for (int c = 0; c < columns.Length; c++)
            if (columns[c].Length == 0) throw new InvalidDataException($"{source} line {line}: column {c + 1} of the header has no name.");
        var values = new List<double>();
        int row = 0;
        for (string? text = reader.ReadLine(); text is not null; text = reader.ReadLine())
        {
            line++;
            if (text.Trim().Length == 0) continue;
            row++;
            var fields = Split(text);
            if (fields.Length != columns.Length)
                throw new InvalidDataException($"{source} line {line} (data row {row}): {fields.Length} fields, but the header has {columns.Length} columns.");
            for (int c = 0; c < fields.Length; c++)
            {
                string field = Unquote(fields[c]);
                if (field.Length == 0 || IsMissingMarker(field))
                    throw new InvalidDataException($"{source} line {line} (data row {row}), column '{columns[c]}': missing value{(field.Length == 0 ? "" : $" '{field}'")}; fill or drop it first.");
                if (!double.TryParse(field, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
                    throw new InvalidDataException($"{source} line {line} (data row {row}), column '{columns[c]}': '{field}' is not a number; every column must be numeric (encode categories as numbers).");
                values.Add(v);
            }
        }
        if (row == 0) throw new InvalidDataException($"{source}: the header is followed by no data rows.");
        return new CsvTable(source, columns, values.ToArray());
    }

    private static string[] Split(string line) => line.Split(',');

    private static string Unquote(string field)
    {
        field = field.Trim();
        return field.Length >= 2 && field[0] == '"' && field[^1] == '"' ? field[1..^1].Trim() : field;
    }

    private static bool IsMissingMarker(string field) =>
        field is "?" or "NA" or "N/A" or "na" or "n/a" or "NaN" or "nan" or "null" or "NULL" or "None";
}
