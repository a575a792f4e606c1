using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Workers.Benchmarks.Infrastructure;

/// <summary>Percentiles of a sample (nearest rank).</summary>
internal sealed class Distribution
{
    private readonly double[] _sorted;

    public Distribution(IEnumerable<double> values)
    {
        _sorted = [.. values];
        Array.Sort(_sorted);
    }

    public int Count => _sorted.Length;

    public double P(double percentile)
    {
        if (_sorted.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(percentile / 100 * _sorted.Length);
        return _sorted[Math.Clamp(rank - 1, 0, _sorted.Length - 1)];
    }

    public double P50 => P(50);

    public double P99 => P(99);

    public double Max => _sorted.Length == 0 ? double.NaN : _sorted[^1];

    public double Min => _sorted.Length == 0 ? double.NaN : _sorted[0];

    public double Mean => _sorted.Length == 0 ? double.NaN : _sorted.Average();

    public string Summary(string unit = "ms") =>
        string.Create(CultureInfo.InvariantCulture, $"p50 {P50:0.###} {unit}, p99 {P99:0.###} {unit}, max {Max:0.###} {unit} (n={Count})");
}

/// <summary>Progress lines with elapsed time, and the closing table.</summary>
internal static class Out
{
    private static readonly Stopwatch Clock = Stopwatch.StartNew();

    public static void Line(string text) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{Clock.Elapsed.TotalSeconds,7:0.0}s] {text}"));

    public static string F(double value, string format = "0.##") => value.ToString(format, CultureInfo.InvariantCulture);

    public static string I(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}

/// <summary>A markdown table, printed at the end of a scenario and collected for <c>--out</c>.</summary>
internal sealed class Table(string title, params string[] columns)
{
    private readonly List<string[]> _rows = [];

    public string Title => title;

    public Table Row(params string[] cells)
    {
        _rows.Add(cells);
        return this;
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append("### ").AppendLine(title);
        text.Append("| ").AppendJoin(" | ", columns).AppendLine(" |");
        text.Append('|').AppendJoin('|', columns.Select(_ => "---")).AppendLine("|");
        foreach (var row in _rows)
        {
            text.Append("| ").AppendJoin(" | ", row).AppendLine(" |");
        }

        return text.ToString();
    }
}

/// <summary>What a scenario hands back: its tables and free-text notes (plans, checks).</summary>
internal sealed class ScenarioResult(string name)
{
    public string Name => name;

    public List<Table> Tables { get; } = [];

    public List<string> Notes { get; } = [];

    public bool Failed { get; set; }

    public Table Add(Table table)
    {
        Tables.Add(table);
        return table;
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append("## ").AppendLine(name);
        foreach (var table in Tables)
        {
            text.AppendLine().Append(table);
        }

        foreach (var note in Notes)
        {
            text.AppendLine().AppendLine(note);
        }

        return text.ToString();
    }
}
