using System.Globalization;
using System.Text;

namespace Workers.Tests.HighAvailability;

/// <summary>A plain SVG of stacked line panels (no charting library): the soak's samples, one panel per measure.</summary>
public static class SoakPlot
{
    private const int Width = 900, PanelHeight = 170, Left = 60, Right = 170, Top = 34, Gap = 34;
    private static readonly string[] Colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

    public static string Svg(string title, IReadOnlyList<double> seconds, IReadOnlyList<(string Title, List<(string Name, List<double> Values)> Lines)> panels)
    {
        var height = Top + panels.Count * (PanelHeight + Gap);
        var svg = new StringBuilder().Append(CultureInfo.InvariantCulture, $"""<svg xmlns="http://www.w3.org/2000/svg" width="{Width}" height="{height}" font-family="sans-serif" font-size="11">""");
        svg.Append(CultureInfo.InvariantCulture, $"""<rect width="100%" height="100%" fill="white"/><text x="{Left}" y="18" font-size="13">{Escape(title)}</text>""");
        var (x0, x1) = (Left, Width - Right);
        var end = Math.Max(1, seconds[^1]);
        for (var p = 0; p < panels.Count; p++)
        {
            var (panelTitle, lines) = panels[p];
            var y0 = Top + p * (PanelHeight + Gap) + 14;
            var y1 = y0 + PanelHeight - 20;
            // From zero, so a flat line looks flat and a climb looks like one.
            var top = Math.Max(1, lines.SelectMany(l => l.Values).Max() * 1.1);
            svg.Append(CultureInfo.InvariantCulture, $"""<text x="{x0}" y="{y0 - 4}" font-weight="bold">{Escape(panelTitle)}</text>""");
            svg.Append(CultureInfo.InvariantCulture, $"""<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="#999"/>""");
            svg.Append(CultureInfo.InvariantCulture, $"""<text x="{x0 - 4}" y="{y0 + 4}" text-anchor="end">{top:F0}</text><text x="{x0 - 4}" y="{y1}" text-anchor="end">0</text>""");
            svg.Append(CultureInfo.InvariantCulture, $"""<text x="{x1}" y="{y1 + 13}" text-anchor="end">{end:F0} s</text><text x="{x0}" y="{y1 + 13}">0 s</text>""");
            for (var l = 0; l < lines.Count; l++)
            {
                var (name, values) = lines[l];
                var colour = Colours[l % Colours.Length];
                var points = string.Join(' ', values.Select((v, i) => FormattableString.Invariant(
                    $"{x0 + (x1 - x0) * seconds[i] / end:F1},{y1 - (y1 - y0) * v / top:F1}")));
                svg.Append(CultureInfo.InvariantCulture, $"""<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>""");
                svg.Append(CultureInfo.InvariantCulture, $"""<text x="{x1 + 8}" y="{y0 + 12 + l * 14}" fill="{colour}">{Escape(name)} (last {values[^1]:F0})</text>""");
            }
        }

        return svg.Append("</svg>").ToString();
    }

    private static string Escape(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal);
}
