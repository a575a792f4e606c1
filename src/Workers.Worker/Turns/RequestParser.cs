using System.Globalization;
using System.Text.Json;
using Workers.Contracts;

namespace Workers.Worker.Turns;

/// <summary>
/// Reads a request as plain JSON or as a MassTransit envelope (whose <c>message</c> holds the same object) and
/// checks every field, so a malformed message is refused once with a specific reason and never retried.
/// </summary>
public static class RequestParser
{
    /// <summary>Bodies above this are refused before parsing: 16,000 characters of text fit many times over.</summary>
    public const int MaxBodyBytes = 256 * 1024;

    public static RequestParseResult Parse(ReadOnlySpan<byte> body)
    {
        if (body.Length > MaxBodyBytes)
        {
            return RequestParseResult.Fail(ErrorCodes.TooLarge, $"body is {body.Length} bytes, more than {MaxBodyBytes}");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            // The parser's own message quotes the offending bytes: say only where it stopped.
            return RequestParseResult.Fail(ErrorCodes.InvalidRequest, $"body is not JSON (line {e.LineNumber}, byte {e.BytePositionInLine})");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("message", out var inner)
                && inner.ValueKind == JsonValueKind.Object && root.TryGetProperty("messageType", out _))
            {
                root = inner;
            }

            return root.ValueKind == JsonValueKind.Object
                ? Read(root)
                : RequestParseResult.Fail(ErrorCodes.InvalidRequest, "body is not a JSON object");
        }
    }

    /// <summary>The refusal of a body over <see cref="MaxBodyBytes"/>, with whatever ids a forward scan finds (top level,
    /// or inside a MassTransit envelope's <c>message</c>), so its session can be told. Reads in place: nothing is copied
    /// but the ids.</summary>
    public static RequestParseResult Oversized(ReadOnlySpan<byte> body)
    {
        Guid? sessionId = null, requestId = null;
        string? userId = null;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 16 });
        try
        {
            string? property = null;
            var envelope = 0;
            while (reader.Read() && (sessionId is null || requestId is null || userId is null))
            {
                var depth = reader.CurrentDepth;
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName when depth == 1 || depth == envelope:
                        property = reader.ValueTextEquals("message"u8) && depth == 1 ? "message"
                            : reader.ValueTextEquals("sessionId"u8) ? "sessionId"
                            : reader.ValueTextEquals("requestId"u8) ? "requestId"
                            : reader.ValueTextEquals("userId"u8) ? "userId"
                            : null;
                        continue;
                    case JsonTokenType.StartObject when property == "message":
                        envelope = depth + 1;
                        break;
                    case JsonTokenType.String when property is "sessionId" or "requestId" && reader.ValueSpan.Length <= 64:
                        if (Guid.TryParse(reader.GetString(), out var id) && property == "sessionId")
                        {
                            sessionId = id;
                        }
                        else if (id != Guid.Empty)
                        {
                            requestId = id;
                        }

                        break;
                    case JsonTokenType.String when property == "userId" && reader.ValueSpan.Length <= ChatLimits.MaxUserIdLength * 6:
                        userId = reader.GetString() is { Length: > 0 and <= ChatLimits.MaxUserIdLength } user ? user : null;
                        break;
                }

                property = null;
            }
        }
        catch (JsonException)
        {
            // Whatever was found before the body stopped being JSON is still worth telling the session.
        }

        return RequestParseResult.Fail(ErrorCodes.TooLarge, $"body is {body.Length} bytes, more than {MaxBodyBytes}",
            sessionId, requestId, userId);
    }

    private static RequestParseResult Read(JsonElement json)
    {
        // Identify the session and user first, so even a refused request can be reported to its session.
        var sessionId = ReadGuid(json, "sessionId", out var sessionError);
        var requestId = ReadGuid(json, "requestId", out var requestError);
        var userId = ReadString(json, "userId", out var userError);
        if (userError is null && (userId!.Length == 0 || userId.Length > ChatLimits.MaxUserIdLength))
        {
            userError = "userId must be 1 to 128 characters";
        }

        var text = ReadString(json, "text", out var textError);
        DateTimeOffset? sentAt = null;
        string? sentAtError = null;
        if (json.TryGetProperty("sentAt", out var sent) && sent.ValueKind != JsonValueKind.Null)
        {
            if (sent.ValueKind == JsonValueKind.String
                && DateTimeOffset.TryParse(sent.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var at))
            {
                sentAt = at;
            }
            else
            {
                sentAtError = "sentAt must be an ISO-8601 date";
            }
        }

        string? systemPrompt = null, promptError = null;
        if (json.TryGetProperty("systemPrompt", out var prompt) && prompt.ValueKind != JsonValueKind.Null)
        {
            systemPrompt = ReadString(json, "systemPrompt", out promptError);
        }

        double? temperature = null;
        string? temperatureError = null;
        if (json.TryGetProperty("temperature", out var t) && t.ValueKind != JsonValueKind.Null)
        {
            if (t.ValueKind == JsonValueKind.Number && t.TryGetDouble(out var value) && value is >= 0 and <= ChatLimits.MaxTemperature)
            {
                temperature = value;
            }
            else
            {
                temperatureError = $"temperature must be a number from 0 to {ChatLimits.MaxTemperature}";
            }
        }

        string? model = null, modelError = null;
        if (json.TryGetProperty("model", out var m) && m.ValueKind != JsonValueKind.Null)
        {
            model = ReadString(json, "model", out modelError);
            if (modelError is null && model is { Length: > 0 } && !ChatLimits.IsModelName(model))
            {
                modelError = "model must be a model's name: a letter or digit, then up to 63 letters, digits, '.', '_' or '-'";
            }
        }

        List<string>? tools = null;
        string? toolsError = null;
        if (json.TryGetProperty("tools", out var toolList) && toolList.ValueKind != JsonValueKind.Null)
        {
            if (toolList.ValueKind == JsonValueKind.Array && toolList.EnumerateArray().All(n => n.ValueKind == JsonValueKind.String))
            {
                tools = toolList.EnumerateArray().Select(n => n.GetString()!).Distinct(StringComparer.Ordinal).ToList();
                toolsError = ChatLimits.CheckToolServers(tools);
            }
            else
            {
                toolsError = "tools must be an array of tool servers' names";
            }
        }

        bool? replaceLast = null;
        string? replaceError = null;
        if (json.TryGetProperty("replaceLast", out var replace) && replace.ValueKind != JsonValueKind.Null)
        {
            replaceLast = replace.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => null,
            };
            replaceError = replaceLast is null ? "replaceLast must be true or false" : null;
        }

        var failure = sessionError ?? requestError ?? userError ?? textError ?? sentAtError ?? promptError ?? temperatureError ?? modelError
                      ?? toolsError ?? replaceError;
        var code = ErrorCodes.InvalidRequest;
        if (failure is null && text!.Length == 0 && replaceLast != true)
        {
            failure = "text must not be empty";
        }
        else if (failure is null && text!.Length > ChatLimits.MaxTextLength)
        {
            (code, failure) = (ErrorCodes.TooLarge, $"text is {text.Length} characters, more than {ChatLimits.MaxTextLength}");
        }
        else if (failure is null && systemPrompt is { Length: > ChatLimits.MaxSystemPromptLength })
        {
            (code, failure) = (ErrorCodes.TooLarge,
                $"systemPrompt is {systemPrompt.Length} characters, more than {ChatLimits.MaxSystemPromptLength}");
        }

        if (failure is not null)
        {
            return RequestParseResult.Fail(code, failure, sessionId, requestId, userError is null ? userId : null);
        }

        return RequestParseResult.Ok(new ChatRequested
        {
            RequestId = requestId!.Value,
            SessionId = sessionId!.Value,
            UserId = userId!,
            Text = text!,
            SentAt = sentAt,
            SystemPrompt = systemPrompt,
            Temperature = temperature,
            Model = model,
            Tools = tools,
            ReplaceLast = replaceLast,
        });
    }

    private static Guid? ReadGuid(JsonElement json, string name, out string? error)
    {
        error = null;
        if (!json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            error = $"{name} is missing";
            return null;
        }

        if (value.ValueKind == JsonValueKind.String && Guid.TryParse(value.GetString(), out var id))
        {
            return id;
        }

        error = $"{name} must be a UUID";
        return null;
    }

    private static string? ReadString(JsonElement json, string name, out string? error)
    {
        error = null;
        if (!json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            error = $"{name} is missing";
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            error = $"{name} must be a string";
            return null;
        }

        return value.GetString();
    }
}
