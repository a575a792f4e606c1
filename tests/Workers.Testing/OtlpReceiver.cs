using System.Collections.Concurrent;
using System.Net;
using System.Text;

namespace Workers.Testing;

/// <summary>A span as an OTLP exporter sent it: ids in lower-case hex, attributes as text.</summary>
public sealed record ReceivedSpan(
    string Service, string Scope, string TraceId, string SpanId, string ParentSpanId, string Name, int Kind,
    IReadOnlyDictionary<string, string> Attributes);

/// <summary>
/// The receiving end of OTLP over HTTP/protobuf (<c>OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf</c>) on a loopback port:
/// keeps every span of <c>/v1/traces</c> and answers logs and metrics with an empty success. The protobuf is read by
/// hand (field numbers of opentelemetry-proto's trace.proto), so the tests check what the exporter really sends.
/// </summary>
public sealed class OtlpReceiver : IDisposable
{
    private readonly ConcurrentQueue<ReceivedSpan> _spans = new();
    private readonly LoopbackHttpServer _server;

    private OtlpReceiver() => _server = new LoopbackHttpServer(ReceiveAsync);

    public Uri Endpoint => _server.Address;

    public IReadOnlyList<ReceivedSpan> Spans => [.. _spans];

    /// <summary>The environment that points a host's exporter here, exporting every 100 ms.</summary>
    public Dictionary<string, string> Settings() => new()
    {
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = Endpoint.ToString().TrimEnd('/'),
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
        ["OTEL_BLRP_SCHEDULE_DELAY"] = "100",
        ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000",
    };

    public static OtlpReceiver Start() => new();

    public async Task<IReadOnlyList<ReceivedSpan>> WaitForAsync(Func<IReadOnlyList<ReceivedSpan>, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition(Spans))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {timeout} waiting for {what}; received {_spans.Count} spans: " +
                                           string.Join(", ", Spans.Select(s => $"{s.Service}/{s.Name}").Distinct().Take(40)));
            }

            await Task.Delay(100);
        }

        return Spans;
    }

    public void Dispose() => _server.Dispose();

    private async Task ReceiveAsync(HttpListenerContext context)
    {
        using var body = new MemoryStream();
        await context.Request.InputStream.CopyToAsync(body);
        if (context.Request.Url?.AbsolutePath == "/v1/traces")
        {
            foreach (var span in ReadTraces(body.ToArray()))
            {
                _spans.Enqueue(span);
            }
        }

        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/x-protobuf";
    }

    // ExportTraceServiceRequest: 1 resource_spans. ResourceSpans: 1 resource, 2 scope_spans. Resource: 1 attributes.
    // ScopeSpans: 1 scope (1 name), 2 spans. Span: 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 9 attributes.
    private static IEnumerable<ReceivedSpan> ReadTraces(byte[] request)
    {
        foreach (var resourceSpans in Fields(request).Where(f => f.Number == 1).Select(f => f.Bytes))
        {
            var fields = Fields(resourceSpans).ToList();
            var resource = fields.Where(f => f.Number == 1).Select(f => Attributes(f.Bytes)).FirstOrDefault() ?? [];
            var service = resource.GetValueOrDefault("service.name", "");
            foreach (var scopeSpans in fields.Where(f => f.Number == 2).Select(f => f.Bytes))
            {
                var scopeFields = Fields(scopeSpans).ToList();
                var scope = scopeFields.Where(f => f.Number == 1).SelectMany(f => Fields(f.Bytes)).Where(f => f.Number == 1)
                    .Select(f => Encoding.UTF8.GetString(f.Bytes)).FirstOrDefault() ?? "";
                foreach (var span in scopeFields.Where(f => f.Number == 2).Select(f => Fields(f.Bytes).ToList()))
                {
                    yield return new ReceivedSpan(service, scope,
                        Hex(span, 1), Hex(span, 2), Hex(span, 4),
                        span.Where(f => f.Number == 5).Select(f => Encoding.UTF8.GetString(f.Bytes)).FirstOrDefault() ?? "",
                        (int)span.Where(f => f.Number == 6).Select(f => f.Varint).FirstOrDefault(),
                        Attributes(span.Where(f => f.Number == 9).Select(f => f.Bytes)));
                }
            }
        }
    }

    private static string Hex(List<Field> fields, int number) =>
        fields.Where(f => f.Number == number).Select(f => Convert.ToHexStringLower(f.Bytes)).FirstOrDefault() ?? "";

    /// <summary>Resource: repeated KeyValue at field 1.</summary>
    private static Dictionary<string, string> Attributes(byte[] resource) =>
        Attributes(Fields(resource).Where(f => f.Number == 1).Select(f => f.Bytes));

    /// <summary>KeyValue: 1 key, 2 AnyValue (1 string, 2 bool, 3 int, 4 double, as text).</summary>
    private static Dictionary<string, string> Attributes(IEnumerable<byte[]> keyValues)
    {
        var attributes = new Dictionary<string, string>();
        foreach (var keyValue in keyValues)
        {
            var fields = Fields(keyValue).ToList();
            var key = fields.Where(f => f.Number == 1).Select(f => Encoding.UTF8.GetString(f.Bytes)).FirstOrDefault() ?? "";
            var value = fields.Where(f => f.Number == 2).SelectMany(f => Fields(f.Bytes)).Select(v => v.Number switch
            {
                1 => Encoding.UTF8.GetString(v.Bytes),
                2 => (v.Varint != 0).ToString(),
                3 => ((long)v.Varint).ToString(System.Globalization.CultureInfo.InvariantCulture),
                4 => BitConverter.Int64BitsToDouble((long)v.Varint).ToString(System.Globalization.CultureInfo.InvariantCulture),
                _ => "",
            }).FirstOrDefault() ?? "";
            attributes[key] = value;
        }

        return attributes;
    }

    private readonly record struct Field(int Number, ulong Varint, byte[] Bytes);

    /// <summary>The fields of one protobuf message: varints and fixed-width values in <see cref="Field.Varint"/>,
    /// length-delimited ones in <see cref="Field.Bytes"/>.</summary>
    private static IEnumerable<Field> Fields(byte[] message)
    {
        var position = 0;
        while (position < message.Length)
        {
            var tag = ReadVarint(message, ref position);
            var number = (int)(tag >> 3);
            switch (tag & 7)
            {
                case 0:
                    yield return new Field(number, ReadVarint(message, ref position), []);
                    break;
                case 1:
                    yield return new Field(number, BitConverter.ToUInt64(message, position), []);
                    position += 8;
                    break;
                case 2:
                    var length = (int)ReadVarint(message, ref position);
                    yield return new Field(number, 0, message[position..(position + length)]);
                    position += length;
                    break;
                case 5:
                    yield return new Field(number, BitConverter.ToUInt32(message, position), []);
                    position += 4;
                    break;
                default:
                    throw new InvalidDataException($"protobuf wire type {tag & 7} at byte {position}");
            }
        }
    }

    private static ulong ReadVarint(byte[] message, ref int position)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = message[position++];
            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
    }
}
