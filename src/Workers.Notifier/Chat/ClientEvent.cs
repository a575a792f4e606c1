using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Workers.Contracts;

namespace Workers.Notifier.Chat;

/// <summary>
/// What the browser receives through the hub's <c>event</c> callback: <c>type</c> (the contract type's name), then
/// every field of the reply event as the bus carried it, then <c>snapshot</c> and <c>sentAt</c> when set. A resumed
/// in-flight turn arrives as one <c>ReplyDelta</c> with <c>snapshot: true</c>, whose text is the whole reply so far
/// and replaces what the client had for that request. The JSON is written once per event (not once per connection),
/// and its length is what a connection's outbound queue counts.
/// </summary>
[JsonConverter(typeof(WrittenOnce))]
public sealed class ClientEvent(IReplyEvent replyEvent)
{
    // The hub protocol's conventions: camelCase names, nulls left out.
    private static readonly JsonSerializerOptions Json = ReadOnly(new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
    });

    private byte[]? _utf8;

    public IReplyEvent Event { get; } = replyEvent ?? throw new ArgumentNullException(nameof(replyEvent));

    public string Type => Event.GetType().Name;

    public Guid SessionId => Event.SessionId;

    public Guid RequestId => Event.RequestId;

    public string UserId => Event.UserId;

    public long Seq => Event.Seq;

    /// <summary>A <c>ReplyDelta</c> holding the whole reply so far (a resume), not the text since the last delta.</summary>
    public bool Snapshot { get; init; }

    /// <summary>When the worker published the event (UTC), for clients and benchmarks measuring delivery lag.</summary>
    public DateTime? SentAt { get; init; }

    public bool IsFinal => Event is TurnCompleted or TurnFailed or TurnCancelled;

    /// <summary>The event as the browser receives it, serialized on first use (a benign race may do it twice).</summary>
    public ReadOnlyMemory<byte> Utf8Json => _utf8 ??= Write();

    private static JsonSerializerOptions ReadOnly(JsonSerializerOptions options)
    {
        options.MakeReadOnly();
        return options;
    }

    private byte[] Write()
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("type", Type);
            foreach (var property in Json.GetTypeInfo(Event.GetType()).Properties)
            {
                if (property.Get?.Invoke(Event) is { } value)
                {
                    writer.WritePropertyName(property.Name);
                    JsonSerializer.Serialize(writer, value, property.PropertyType, Json);
                }
            }

            if (Snapshot)
            {
                writer.WriteBoolean("snapshot", true);
            }

            if (SentAt is { } sentAt)
            {
                writer.WriteString("sentAt", sentAt);
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Lets the hub protocol copy the bytes written once. Outbound only: the server never reads events.</summary>
    private sealed class WrittenOnce : JsonConverter<ClientEvent>
    {
        public override ClientEvent Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            throw new NotSupportedException("client events are only written");

        public override void Write(Utf8JsonWriter writer, ClientEvent value, JsonSerializerOptions options) =>
            writer.WriteRawValue(value.Utf8Json.Span, skipInputValidation: true);
    }
}
