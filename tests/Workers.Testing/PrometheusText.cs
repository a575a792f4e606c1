using System.Globalization;

namespace Workers.Testing;

/// <summary>
/// A scrape of <c>/metrics</c> (Prometheus text format) read into samples: <c>name{labels} value</c>. <see cref="Sum"/>
/// adds up a metric's samples whose labels include the given ones.
/// </summary>
public sealed class PrometheusText
{
    private readonly List<(string Name, Dictionary<string, string> Labels, double Value)> _samples = [];

    private PrometheusText(string text)
    {
        Text = text;
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var brace = line.IndexOf('{', StringComparison.Ordinal);
            var space = line.LastIndexOf('}') is var close and > 0 ? line.IndexOf(' ', close) : line.IndexOf(' ', StringComparison.Ordinal);
            var name = brace > 0 && brace < space ? line[..brace] : line[..space];
            var labels = new Dictionary<string, string>();
            if (brace > 0 && brace < space)
            {
                foreach (var pair in line[(brace + 1)..line.LastIndexOf('}')].Split("\",", StringSplitOptions.RemoveEmptyEntries))
                {
                    var eq = pair.IndexOf('=', StringComparison.Ordinal);
                    labels[pair[..eq].Trim(',', ' ')] = pair[(eq + 1)..].Trim('"');
                }
            }

            var value = line[(space + 1)..].Split(' ')[0];
            _samples.Add((name, labels, value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                _ => double.Parse(value, CultureInfo.InvariantCulture),
            }));
        }
    }

    public string Text { get; }

    public static async Task<PrometheusText> ScrapeAsync(HttpClient http, Uri baseAddress)
    {
        ArgumentNullException.ThrowIfNull(http);
        return new PrometheusText(await http.GetStringAsync(new Uri(baseAddress, "/metrics")));
    }

    public bool Has(string name) => _samples.Any(s => s.Name == name);

    public double Sum(string name, params (string Label, string Value)[] labels) => _samples
        .Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Label, out var v) && v == l.Value))
        .Sum(s => s.Value);
}
