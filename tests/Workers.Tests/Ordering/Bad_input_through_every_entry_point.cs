using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Npgsql;
using Workers.Contracts;
using Workers.Core.Messaging;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Ordering;

/// <summary>
/// The bad-input sweep, as one matrix: each kind of bad input through each entry point (plain JSON and a MassTransit
/// envelope over AMQP, REST and the hub on the notifier) gets its documented error; a valid request queued behind them
/// on the same session and a bystander's on the same partition still complete in order; no answer carries another
/// user's data; and the worker and the notifier are still up at the end.
/// </summary>
[Collection("worker pools")]
public sealed class Bad_input_through_every_entry_point(ServicesFixture services)
{
    private const string Alice = "alice";
    private const string Bob = "bob";
    private const string Sql = "'; DROP TABLE workers.sessions; --";
    private const string OneMegabyte = "1 MB text";
    private static readonly JsonSerializerOptions AsTheyAre = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The AMQP rows. A request's fields are a valid request's (<see cref="Valid"/>) with one thing wrong; the same
    /// message goes out once as plain JSON and once inside a MassTransit envelope. Expected: where the session and user
    /// can be read, <c>TurnFailed</c> with the code; a parse refusal also leaves one error-queue record (code and the
    /// start of its reason; the rest is positions and sizes); a request the contract accepts completes.</summary>
    private static readonly AmqpCase[] AmqpCases =
    [
        new("malformed JSON", i => Valid(i)[..^2], ErrorCodes.InvalidRequest, Reason: "body is not JSON"),
        new("a JSON value that is not an object", _ => "\"hello\"", ErrorCodes.InvalidRequest, Reason: "body is not a JSON object",
            // Inside an envelope whose message is not an object, the envelope itself is read as the request.
            EnvelopeReason: "sessionId is missing"),
        new("missing text", i => Valid(i, r => r.Remove("text")), ErrorCodes.InvalidRequest, ToSession: true, Reason: "text is missing"),
        new("missing sessionId", i => Valid(i, r => r.Remove("sessionId")), ErrorCodes.InvalidRequest, Reason: "sessionId is missing"),
        new("missing userId", i => Valid(i, r => r.Remove("userId")), ErrorCodes.InvalidRequest, Reason: "userId is missing"),
        new("missing requestId", i => Valid(i, r => r.Remove("requestId")), ErrorCodes.InvalidRequest, ToSession: true,
            Reason: "requestId is missing"),
        // The contract names the fields it reads; a producer's additional ones are ignored (an envelope always has some).
        new("extra unknown fields", i => Valid(i, r =>
        {
            r["priority"] = 5;
            r["attachments"] = new JsonArray("a.png", null);
            r["metadata"] = new JsonObject { ["client"] = new JsonObject { ["name"] = "cli", ["version"] = 2 } };
        })),
        new("wrongly typed text (a number)", i => Valid(i, r => r["text"] = 42), ErrorCodes.InvalidRequest, ToSession: true,
            Reason: "text must be a string"),
        new("wrongly typed userId (a boolean)", i => Valid(i, r => r["userId"] = true), ErrorCodes.InvalidRequest,
            Reason: "userId must be a string"),
        new("wrongly typed sessionId (a number)", i => Valid(i, r => r["sessionId"] = 12345), ErrorCodes.InvalidRequest,
            Reason: "sessionId must be a UUID"),
        new("wrongly typed sentAt (not a date)", i => Valid(i, r => r["sentAt"] = "yesterday"), ErrorCodes.InvalidRequest, ToSession: true,
            Reason: "sentAt must be an ISO-8601 date"),
        new("empty text", i => Valid(i, r => r["text"] = ""), ErrorCodes.InvalidRequest, ToSession: true, Reason: "text must not be empty"),
        new("model carrying SQL", i => Valid(i, r => r["model"] = Sql), ErrorCodes.InvalidRequest, ToSession: true,
            Reason: "model must be a model's name"),
        new("tools carrying SQL", i => Valid(i, r => r["tools"] = new System.Text.Json.Nodes.JsonArray(Sql)), ErrorCodes.InvalidRequest, ToSession: true,
            Reason: "tools must be tool servers' names"),
        new("wrongly typed tools (a string)", i => Valid(i, r => r["tools"] = "local"), ErrorCodes.InvalidRequest, ToSession: true,
            Reason: "tools must be an array"),
        new("wrongly typed replaceLast (a word)", i => Valid(i, r => r["replaceLast"] = "yes"), ErrorCodes.InvalidRequest, ToSession: true,
            Reason: "replaceLast must be true or false"),
        // Well formed, so not set aside: the session is told which models (tool servers) there are.
        new("a model the workers do not have", i => Valid(i, r => r["model"] = "gpt-9"), ErrorCodes.InvalidRequest, ToSession: true),
        new("a tool server the workers do not have", i => Valid(i, r => r["tools"] = new System.Text.Json.Nodes.JsonArray("nope")), ErrorCodes.InvalidRequest,
            ToSession: true),
        new("text over 16,000 characters", i => Valid(i, r => r["text"] = new string('x', ChatLimits.MaxTextLength + 1)),
            ErrorCodes.TooLarge, ToSession: true, Reason: "text is 16001 characters"),
        new(OneMegabyte, i => Valid(i, r => r["text"] = new string('x', 1024 * 1024)), ErrorCodes.TooLarge, ToSession: true,
            Reason: "body is "),
        new("userId of 129 characters", i => Valid(i, r => r["userId"] = new string('u', ChatLimits.MaxUserIdLength + 1)),
            ErrorCodes.InvalidRequest, Reason: "userId must be 1 to 128 characters"),
        new("sessionId not a UUID", i => Valid(i, r => r["sessionId"] = "not-a-uuid"), ErrorCodes.InvalidRequest,
            Reason: "sessionId must be a UUID"),
        new("requestId not a UUID", i => Valid(i, r => r["requestId"] = "not-a-uuid"), ErrorCodes.InvalidRequest, ToSession: true,
            Reason: "requestId must be a UUID"),
        new("sessionId carrying SQL", i => Valid(i, r => r["sessionId"] = Sql), ErrorCodes.InvalidRequest,
            Reason: "sessionId must be a UUID"),
        new("requestId carrying SQL", i => Valid(i, r => r["requestId"] = "1' OR '1'='1"), ErrorCodes.InvalidRequest,
            ToSession: true, Reason: "requestId must be a UUID"),
        // A producer asserts the user; one that reads like SQL is only a name that does not own alice's session...
        new("userId carrying SQL, on alice's session", i => Valid(i, r => r["userId"] = "alice' OR '1'='1"), ErrorCodes.SessionNotFound,
            ToSession: true),
        // ...and, on a session nobody has, a new user's name, stored as it is.
        new("userId carrying SQL, on a new session", i => Valid(i, r =>
        {
            r["sessionId"] = i.Fresh.ToString();
            r["userId"] = $"mallory{Sql}";
        })),
        // "A first request for an unknown sessionId creates the session for that userId."
        new("unknown session", i => Valid(i, r => r["sessionId"] = i.Fresh.ToString())),
        new("another user's session", i => Valid(i, r => r["sessionId"] = i.Bobs.ToString()), ErrorCodes.SessionNotFound, ToSession: true),
        new("no AMQP user-id property", i => Valid(i), ErrorCodes.InvalidRequest, ToSession: true,
            Reason: "the request has no AMQP user-id property", WithoutUserId: true),
    ];

    /// <summary>The REST rows: status and the problem's <c>code</c> ("errors as RFC 7807 problem details with code").</summary>
    private static readonly RestCase[] RestCases =
    [
        new("malformed JSON", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages", "{\"text\": \"hi", "400 invalid_request"),
        new("malformed JSON creating a session", HttpMethod.Post, _ => "/api/sessions", "{\"title\": ", "400 invalid_request"),
        new("a body that is not JSON (text/plain)", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages", "hi", "415 invalid_request",
            ContentType: "text/plain"),
        new("missing text", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages", "{}", "400 invalid_request"),
        new("missing requestId of a cancel", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/cancel", "{}", "400 invalid_request"),
        // The user and session come from the token and the path, never from the body: these are ignored too.
        new("extra unknown fields", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages", null, "202", BodyOf: i =>
            $$"""{"text": "extra fields over REST", "userId": "bob", "sessionId": "{{i.Bobs}}", "priority": 5, "meta": {"a": [1]} }"""),
        new("wrongly typed text (a number)", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages", "{\"text\": 42}",
            "400 invalid_request"),
        new("wrongly typed requestId (a number)", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages",
            "{\"text\": \"hi\", \"requestId\": 5}", "400 invalid_request"),
        new("wrongly typed title (a number)", HttpMethod.Patch, i => $"/api/sessions/{i.Alices}", "{\"title\": 5}", "400 invalid_request"),
        new("an edit with empty text", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/edit", "{\"text\": \"\"}", "400 invalid_request"),
        new("another user's session: regenerate", HttpMethod.Post, i => $"/api/sessions/{i.Bobs}/regenerate", "{}", "404 session_not_found"),
        new("model carrying SQL", HttpMethod.Patch, i => $"/api/sessions/{i.Alices}", JsonSerializer.Serialize(new { model = Sql }),
            "400 invalid_request"),
        new("tools carrying SQL", HttpMethod.Patch, i => $"/api/sessions/{i.Alices}", JsonSerializer.Serialize(new { tools = new[] { Sql } }),
            "400 invalid_request"),
        new("17 tool servers", HttpMethod.Post, i => "/api/sessions",
            JsonSerializer.Serialize(new { tools = Enumerable.Range(0, 17).Select(n => $"t{n}") }), "400 invalid_request"),
        new("wrongly typed afterSeq (a word)", HttpMethod.Get, i => $"/api/sessions/{i.Alices}/turns?afterSeq=abc", null,
            "400 invalid_request"),
        new("empty text", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages", "{\"text\": \"\"}", "400 invalid_request"),
        new("text over 16,000 characters", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages",
            JsonSerializer.Serialize(new { text = new string('x', ChatLimits.MaxTextLength + 1) }), "413 too_large"),
        new(OneMegabyte, HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages",
            JsonSerializer.Serialize(new { text = new string('x', 1024 * 1024) }), "413 too_large"),
        new("sessionId not a UUID", HttpMethod.Post, _ => "/api/sessions/not-a-uuid/messages", "{\"text\": \"hi\"}", "400 invalid_request"),
        new("requestId not a UUID", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/messages",
            "{\"text\": \"hi\", \"requestId\": \"not-a-uuid\"}", "400 invalid_request"),
        new("sessionId carrying SQL", HttpMethod.Post, _ => $"/api/sessions/{Uri.EscapeDataString(Sql)}/messages", "{\"text\": \"hi\"}",
            "400 invalid_request"),
        new("requestId carrying SQL", HttpMethod.Post, i => $"/api/sessions/{i.Alices}/cancel",
            JsonSerializer.Serialize(new { requestId = Sql }), "400 invalid_request"),
        new("unknown session", HttpMethod.Post, i => $"/api/sessions/{i.Fresh}/messages", "{\"text\": \"hi\"}", "404 session_not_found"),
        new("another user's session: send", HttpMethod.Post, i => $"/api/sessions/{i.Bobs}/messages", "{\"text\": \"hi\"}",
            "404 session_not_found"),
        new("another user's session: read it", HttpMethod.Get, i => $"/api/sessions/{i.Bobs}", null, "404 session_not_found"),
        new("another user's session: read its turns", HttpMethod.Get, i => $"/api/sessions/{i.Bobs}/turns", null, "404 session_not_found"),
    ];

    /// <summary>The hub rows: "the part after <c>HubException: </c> is <c>code: message</c>". Its arguments are positional,
    /// so a missing, extra or mistyped one is a malformed call. A message over the hub's size limit "closes the
    /// connection", and so does a frame that is not JSON (the protocol cannot tell which call it was).</summary>
    private static readonly HubCase[] HubCases =
    [
        new("missing argument (SendMessage without requestId)", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [i.Alices.ToString(), "hi"])),
        new("missing text (null)", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [i.Alices.ToString(), null, null])),
        new("extra argument", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [i.Alices.ToString(), "hi", null, "extra"])),
        new("wrongly typed text (a number)", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [i.Alices.ToString(), 42, null])),
        new("wrongly typed sessionId (an object)", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [new { id = i.Alices }, "hi", null])),
        new("wrongly typed afterSeq (a word)", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("Subscribe", typeof(JsonElement), [i.Alices.ToString(), "abc"])),
        new("a method that does not exist", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("DeleteEverything", typeof(JsonElement), [i.Alices.ToString()])),
        new("empty text", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [i.Alices.ToString(), "", null])),
        new("text over 16,000 characters", "HubException too_large",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement),
                [i.Alices.ToString(), new string('x', ChatLimits.MaxTextLength + 1), null])),
        new(OneMegabyte, "connection closed",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [i.Alices.ToString(), new string('x', 1024 * 1024), null]),
            OwnConnection: true),
        new("title over 200 characters", "HubException too_large",
            (c, _) => c.InvokeCoreAsync("CreateSession", typeof(JsonElement), [new string('t', 201)])),
        new("sessionId not a UUID", "HubException invalid_request",
            (c, _) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), ["not-a-uuid", "hi", null])),
        new("requestId not a UUID", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [i.Alices.ToString(), "hi", "not-a-uuid"])),
        new("sessionId carrying SQL", "HubException invalid_request",
            (c, _) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [Sql, "hi", null])),
        new("requestId carrying SQL", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("CancelTurn", typeof(JsonElement), [i.Alices.ToString(), Sql])),
        new("unknown session", "HubException session_not_found",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [i.Fresh.ToString(), "hi", null])),
        new("another user's session: send", "HubException session_not_found",
            (c, i) => c.InvokeCoreAsync("SendMessage", typeof(JsonElement), [i.Bobs.ToString(), "hi", null])),
        new("model carrying SQL", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("ChooseModel", typeof(JsonElement), [i.Alices.ToString(), Sql])),
        new("tools carrying SQL", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("ChooseTools", typeof(JsonElement), [i.Alices.ToString(), new[] { "ok", Sql }])),
        new("another user's session: choose tools", "HubException session_not_found",
            (c, i) => c.InvokeCoreAsync("ChooseTools", typeof(JsonElement), [i.Bobs.ToString(), new[] { "local" }])),
        new("an edit with empty text", "HubException invalid_request",
            (c, i) => c.InvokeCoreAsync("EditLast", typeof(JsonElement), [i.Alices.ToString(), " ", null])),
        new("another user's session: edit", "HubException session_not_found",
            (c, i) => c.InvokeCoreAsync("EditLast", typeof(JsonElement), [i.Bobs.ToString(), "mine now", null])),
        new("another user's session: choose a model", "HubException session_not_found",
            (c, i) => c.InvokeCoreAsync("ChooseModel", typeof(JsonElement), [i.Bobs.ToString(), "big"])),
        new("another user's session: subscribe", "HubException session_not_found",
            (c, i) => c.InvokeCoreAsync("Subscribe", typeof(JsonElement), [i.Bobs.ToString(), 0L])),
    ];

    [Fact]
    public async Task Each_bad_input_gets_its_documented_error_and_nothing_else_is_lost()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var starting = pool.StartWorkerAsync();
        // Production: what a deployment answers (Development adds the developer exception page). Alice's accepted requests
        // would otherwise meet her limit of 2 running turns and 40 a minute, which is not what this sweep is about.
        var notifier = await pool.StartNotifierAsync(new Dictionary<string, string>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["Limits__ConcurrentTurns"] = "1000",
            ["Limits__MessagesPerMinute"] = "10000",
        });
        var worker = await starting;

        // Alice's session and Bob's, on one partition: whatever a bad request did to its partition, Bob would see.
        var alices = Guid.NewGuid();
        var partition = Partitioning.PartitionOf(alices, pool.Partitions);
        var bobs = Session_lanes.SessionOnPartition(partition, pool.Partitions);
        var ids = () => new Ids(alices, bobs, Guid.NewGuid(), Session_lanes.SessionOnPartition(partition, pool.Partitions));
        // What Bob has that Alice must never be shown: his message, and his session's title.
        var secret = $"bob-private-{Guid.NewGuid():N}";
        var alicesFirst = Broker.Request(alices, Alice, "alice's first");
        var bobsFirst = Broker.Request(bobs, Bob, $"remember code = {secret}");
        await pool.Broker.PublishAsync(alicesFirst);
        await pool.Broker.PublishAsync(bobsFirst);
        await pool.Events.WaitForAsync(e => Completed(e, alicesFirst.RequestId) && Completed(e, bobsFirst.RequestId),
            TimeSpan.FromSeconds(30), "both sessions' first turns");
        using (var bobHttp = notifier.Http(Bob))
        {
            (await bobHttp.PatchAsJsonAsync($"/api/sessions/{bobs}", new { title = $"bob's {secret}" })).EnsureSuccessStatusCode();
        }

        await using var alice = await notifier.ConnectAsync(Alice);
        await alice.SubscribeAsync(alices);
        var rows = new List<Row>();
        var answers = new List<string>();

        // 1 and 2: AMQP, plain JSON and enveloped, each tagged with its row in the message-id property (the error queue keeps it).
        var published = new List<(string Entry, AmqpCase Case, Ids Ids, string Message, string Body)>();
        await using (var channel = await pool.Broker.OpenPublisherAsync())
        {
            foreach (var entry in new[] { "AMQP JSON", "AMQP envelope" })
            {
                foreach (var amqp in AmqpCases)
                {
                    var caseIds = ids();
                    var message = amqp.Message(caseIds);
                    var body = entry == "AMQP JSON" ? message : Envelope(message);
                    var properties = pool.Broker.Persistent();
                    properties.MessageId = $"{entry}: {amqp.Name}";
                    properties.ContentType = entry == "AMQP JSON" ? "application/json" : "application/vnd.masstransit+json";
                    properties.UserId = amqp.WithoutUserId ? null : properties.UserId;
                    await channel.BasicPublishAsync(Partitioning.RequestsExchange, Partitioning.RoutingKey(alices, pool.Partitions),
                        mandatory: false, properties, Encoding.UTF8.GetBytes(body));
                    published.Add((entry, amqp, caseIds, message, body));
                }
            }
        }

        // 3: REST, as Alice.
        var restAccepted = new List<Guid>();
        using (var http = notifier.Http(Alice))
        {
            foreach (var rest in RestCases)
            {
                var caseIds = ids();
                using var request = new HttpRequestMessage(rest.Method, rest.Path(caseIds));
                if ((rest.BodyOf?.Invoke(caseIds) ?? rest.Body) is { } body)
                {
                    request.Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue(rest.ContentType));
                }

                using var response = await http.SendAsync(request);
                var text = await response.Content.ReadAsStringAsync();
                answers.Add(text);
                rows.Add(new Row("REST", rest.Name, rest.Expected, ObservedRest(response, text)));
                if (response.StatusCode == HttpStatusCode.Accepted)
                {
                    restAccepted.Add(JsonDocument.Parse(text).RootElement.GetProperty("requestId").GetGuid());
                }
            }
        }

        // 4: the hub, as Alice: her one connection takes every call that must leave it open.
        rows.Add(new Row("hub", "malformed JSON", "connection closed", await SendRawHubFrameAsync(notifier,
            $$"""{"type":1,"invocationId":"1","target":"SendMessage","arguments":["{{alices}}","hi",null]""", answers)));
        foreach (var hub in HubCases)
        {
            var client = hub.OwnConnection ? await notifier.ConnectAsync(Alice) : alice;
            try
            {
                rows.Add(new Row("hub", hub.Name, hub.Expected, await ObserveHubAsync(client, c => hub.Call(c, ids()), answers)));
            }
            finally
            {
                if (hub.OwnConnection)
                {
                    await client.DisposeAsync();
                }
            }
        }

        // Then, behind all of them: Alice's next request on her session, from a producer, and Bob's, through the hub. Waited
        // for without failing here: the matrix says what is missing.
        var alicesNext = Broker.Request(alices, Alice, "alice's next");
        await pool.Broker.PublishAsync(alicesNext);
        await using var bob = await notifier.ConnectAsync(Bob);
        await bob.SubscribeAsync(bobs);
        var bobsNext = await bob.SendAsync(bobs, "bob's next");
        var accepted = published.Where(p => p.Case.Code is null).Select(p => p.Ids.Request).ToList();
        var told = published.Count(p => p.Case.ToSession);
        await EventuallyAsync(() => Completed(pool.Events.Events, alicesNext.RequestId) && Completed(pool.Events.Events, bobsNext),
            TimeSpan.FromSeconds(30));
        // What was refused on the partition was refused before those two ran; the other sessions' turns and the events
        // may still be on their way.
        await EventuallyAsync(() => accepted.All(r => Completed(pool.Events.Events, r))
            && pool.Events.OfType("TurnFailed").Count(e => e.SessionId == alices || e.SessionId == bobs) >= told
            && alice.Live.Any(x => ChatClient.Is(x, "TurnCompleted", alicesNext.RequestId)), TimeSpan.FromSeconds(10));

        // The AMQP rows, from the events exchange and the error queue.
        var errors = new Dictionary<string, (string Code, string Reason)>();
        while (await pool.Broker.GetAsync(RequestTopology.ErrorQueue) is { } error)
        {
            var record = JsonDocument.Parse(error.Body).RootElement;
            errors[error.BasicProperties.MessageId ?? $"(no message id) {record.GetProperty("requestId")}"] =
                (record.GetProperty("code").GetString()!, record.GetProperty("reason").GetString()!);
        }

        // A request whose session can be read but not its id is refused to the session with the empty id: those refusals
        // go, in order, to the rows whose body names Alice's session and not their request.
        var events = pool.Events.Events;
        var anonymous = new Queue<RecordedEvent>(
            events.Where(e => e.Type == "TurnFailed" && e.RequestId == Guid.Empty && e.SessionId == alices));
        foreach (var (entry, amqp, caseIds, _, body) in published)
        {
            var mine = events.Where(e => e.RequestId == caseIds.Request && e.Type is "TurnFailed" or "TurnCompleted").ToList();
            if (mine.Count == 0 && body.Contains(alices.ToString(), StringComparison.Ordinal)
                && !body.Contains(caseIds.Request.ToString(), StringComparison.Ordinal) && anonymous.Count > 0)
            {
                mine.Add(anonymous.Dequeue());
            }

            answers.AddRange(mine.Select(e => e.Message.GetRawText()));
            var reason = entry == "AMQP envelope" ? amqp.EnvelopeReason ?? amqp.Reason : amqp.Reason;
            var expected = Outcome(amqp.Code is null, amqp.ToSession ? amqp.Code : null, reason is null ? null : (amqp.Code!, reason));
            var observed = Outcome(mine.Any(e => e.Type == "TurnCompleted"), mine.FirstOrDefault(e => e.Type == "TurnFailed")?.Code,
                errors.Remove($"{entry}: {amqp.Name}", out var got) ? (got.Code, Prefix(got.Reason, reason)) : null);
            rows.Add(new Row(entry, amqp.Name, expected, observed));
        }

        // Nothing lost, in order: Alice's session ran her accepted requests in the order they were sent, the last one after
        // every bad one; Bob's, on the same partition, both of his and nothing of Alice's.
        var alicesAccepted = published.Where(p => p.Case.Code is null && SessionOf(p.Message) == alices).Select(p => p.Ids.Request)
            .Prepend(alicesFirst.RequestId).Concat(restAccepted).Append(alicesNext.RequestId).ToList();
        rows.Add(new Row("afterwards", "Alice's session: her accepted requests, in order",
            string.Join(", ", alicesAccepted.Select(r => Turn(Alice, r))), await TurnsAsync(pool, alices)));
        rows.Add(new Row("afterwards", "Bob's session (same partition): his requests, in order",
            $"{Turn(Bob, bobsFirst.RequestId)}, {Turn(Bob, bobsNext)}", await TurnsAsync(pool, bobs)));
        rows.Add(new Row("afterwards", "Alice's next reply, through her hub subscription", "delivered",
            alice.Live.Any(x => ChatClient.Is(x, "TurnCompleted", alicesNext.RequestId)) ? "delivered" : "not delivered"));
        rows.Add(new Row("afterwards", "error-queue records of no row", "none",
            errors.Count == 0 ? "none" : string.Join("; ", errors.Keys)));
        // The SQL in a user id was stored as a name (once per AMQP entry point), and the tables are all still there.
        var named = await pool.Db.ScalarAsync<long>(
            $"SELECT count(*) FROM workers.sessions WHERE owner_id = 'mallory{Sql.Replace("'", "''", StringComparison.Ordinal)}'");
        var tables = await pool.Db.ScalarAsync<long>(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'workers' AND tablename = 'sessions'");
        rows.Add(new Row("afterwards", "the user named with SQL, and the tables", "2 sessions, 1 sessions table",
            $"{named} sessions, {tables} sessions table"));

        // No answer Alice got, whatever she sent, showed her Bob's text or title, and her lists of sessions do not show his.
        answers.AddRange(alice.Live.Select(e => e.GetRawText()));
        using var aliceHttp = notifier.Http(Alice);
        string[] lists = [await aliceHttp.GetStringAsync("/api/sessions"),
            JsonSerializer.Serialize(await alice.Connection.InvokeAsync<List<JsonElement>>("ListSessions"))];
        var leaks = answers.Concat(lists).Count(a => a.Contains(secret, StringComparison.Ordinal))
            + lists.Count(l => l.Contains(bobs.ToString(), StringComparison.Ordinal));
        rows.Add(new Row("afterwards", "Bob's text, title or session in an answer to Alice", "none",
            leaks == 0 ? "none" : $"in {leaks} answers"));

        // Both hosts are still up and answering.
        using var anonymousHttp = notifier.Http();
        rows.Add(new Row("afterwards", "worker process", "running", worker.Running ? "running" : "exited"));
        rows.Add(new Row("afterwards", "notifier process, /health/ready", "running, 200",
            $"{(notifier.Process.Running ? "running" : "exited")}, {(int)(await anonymousHttp.GetAsync("/health/ready")).StatusCode}"));

        foreach (var row in rows)
        {
            TestContext.Current.TestOutputHelper?.WriteLine($"{row.EntryPoint,-13} | {row.Case,-55} | {row.Observed}");
        }

        Assert.Empty(rows.Where(r => r.Expected != r.Observed)
            .Select(r => $"{r.EntryPoint}: {r.Case}: expected {r.Expected}, got {r.Observed}"));
    }

    private static async Task EventuallyAsync(Func<bool> condition, TimeSpan timeout)
    {
        for (var deadline = DateTime.UtcNow + timeout; !condition() && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(50);
        }
    }

    private static Guid? SessionOf(string message) =>
        Guid.TryParse(JsonNode.Parse(message)?["sessionId"]?.GetValue<string>(), out var id) ? id : null;

    private static bool Completed(IReadOnlyList<RecordedEvent> events, Guid requestId) =>
        events.Any(e => e.Type == "TurnCompleted" && e.RequestId == requestId);

    /// <summary>A valid request of Alice's on her session, changed by <paramref name="change"/>.</summary>
    private static string Valid(Ids ids, Action<JsonObject>? change = null)
    {
        var request = new JsonObject
        {
            ["requestId"] = ids.Request.ToString(),
            ["sessionId"] = ids.Alices.ToString(),
            ["userId"] = Alice,
            ["text"] = "a request of the sweep",
            ["sentAt"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        };
        change?.Invoke(request);
        // Quotes as they are: the SQL rows carry a real ' in their bytes.
        return request.ToJsonString(AsTheyAre);
    }

    /// <summary>A MassTransit envelope around <paramref name="message"/> (its text as it is, so a malformed message makes a
    /// malformed envelope), with the fields MassTransit writes.</summary>
    private static string Envelope(string message) => $$"""
        {"messageId": "{{Guid.NewGuid()}}", "conversationId": "{{Guid.NewGuid()}}",
         "sourceAddress": "rabbitmq://localhost/sweep", "destinationAddress": "rabbitmq://localhost/workers.chat-requests",
         "messageType": ["urn:message:Workers.Contracts:ChatRequested"], "message": {{message}},
         "sentTime": "{{DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture)}}", "headers": {},
         "host": {"machineName": "sweep", "processName": "Workers.Tests", "massTransitVersion": "8.5.0"} }
        """;

    private static string Outcome(bool completed, string? failedCode, (string Code, string Reason)? errorQueue)
    {
        var parts = new List<string>();
        if (completed)
        {
            parts.Add("completed");
        }

        if (failedCode is not null)
        {
            parts.Add($"TurnFailed {failedCode}");
        }

        if (errorQueue is { } record)
        {
            parts.Add($"error queue {record.Code}: {record.Reason}");
        }

        return parts.Count == 0 ? "nothing" : string.Join(", ", parts);
    }

    /// <summary>The reason as the row expects it when it starts so (the rest is positions and sizes), else all of it.</summary>
    private static string Prefix(string reason, string? expected) =>
        expected is not null && reason.StartsWith(expected, StringComparison.Ordinal) ? expected : reason;

    private static string ObservedRest(HttpResponseMessage response, string body)
    {
        var status = ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
        if (response.IsSuccessStatusCode)
        {
            return status;
        }

        try
        {
            return JsonDocument.Parse(body).RootElement.TryGetProperty("code", out var code)
                ? $"{status} {code.GetString()}"
                : $"{status} (no code)";
        }
        catch (JsonException)
        {
            return $"{status} (no problem details: '{body[..Math.Min(body.Length, 80)]}')";
        }
    }

    private const string Marker = "HubException: ";

    /// <summary>The call's outcome: accepted, the code of its <see cref="HubException"/>, a generic error, or the
    /// connection closed.</summary>
    private static async Task<string> ObserveHubAsync(ChatClient client, Func<HubConnection, Task> call, List<string> answers)
    {
        var closed = new TaskCompletionSource();
        Func<Exception?, Task> onClosed = _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };
        client.Connection.Closed += onClosed;
        try
        {
            await call(client.Connection);
            return "accepted";
        }
        catch (HubException e) when (e.Message.Contains(Marker, StringComparison.Ordinal))
        {
            answers.Add(e.Message);
            return $"HubException {e.Message[(e.Message.IndexOf(Marker, StringComparison.Ordinal) + Marker.Length)..].Split(": ")[0]}";
        }
        catch (Exception e)
        {
            answers.Add(e.Message);
            // The client fails a call cut off by the server's close with a HubException of its own (no code): it is the
            // close that tells.
            try
            {
                await closed.Task.WaitAsync(TimeSpan.FromSeconds(e is HubException ? 5 : 10));
                return "connection closed";
            }
            catch (TimeoutException)
            {
                return e is HubException ? $"generic error '{e.Message}'" : $"{e.GetType().Name} '{e.Message}'";
            }
        }
        finally
        {
            client.Connection.Closed -= onClosed;
        }
    }

    /// <summary>Speaks the SignalR JSON protocol over a raw websocket (a browser's client never sends a broken frame) and
    /// sends <paramref name="frame"/>; says whether the notifier closed the connection.</summary>
    private static async Task<string> SendRawHubFrameAsync(NotifierProcess notifier, string frame, List<string> answers)
    {
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", $"Bearer {NotifierProcess.Token(Alice)}");
        await socket.ConnectAsync(new Uri($"ws://{notifier.BaseAddress.Authority}/hubs/chat"), CancellationToken.None);
        await socket.SendAsync(Encoding.UTF8.GetBytes("{\"protocol\":\"json\",\"version\":1}\u001e"), WebSocketMessageType.Text, true,
            CancellationToken.None);
        var buffer = new byte[16 * 1024];
        var handshake = await socket.ReceiveAsync(buffer, CancellationToken.None);
        if (Encoding.UTF8.GetString(buffer, 0, handshake.Count) != "{}\u001e")
        {
            return $"handshake refused: {Encoding.UTF8.GetString(buffer, 0, handshake.Count)}";
        }

        await socket.SendAsync(Encoding.UTF8.GetBytes(frame + "\u001e"), WebSocketMessageType.Text, true, CancellationToken.None);
        var received = new StringBuilder();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, deadline.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return "connection closed";
                }

                var text = Encoding.UTF8.GetString(buffer, 0, result.Count);
                received.Append(text);
                answers.Add(text);
            }
        }
        catch (WebSocketException)
        {
            return "connection closed";
        }
        catch (OperationCanceledException)
        {
            return $"still open after 10 s, having sent '{received}'";
        }
    }

    /// <summary>A session's turns in turn order, whatever their status: "alice's {request id} complete".</summary>
    private static async Task<string> TurnsAsync(WorkersSystem pool, Guid session)
    {
        await using var connection = await pool.Db.OpenAdminAsync();
        await using var command = new NpgsqlCommand(
            "SELECT owner_id, request_id, status FROM workers.turns WHERE session_id = $1 ORDER BY turn_no", connection);
        command.Parameters.AddWithValue(session);
        var turns = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            turns.Add(Turn(reader.GetString(0), reader.GetGuid(1), reader.GetString(2)));
        }

        return string.Join(", ", turns);
    }

    private static string Turn(string owner, Guid request, string status = "complete") => $"{owner}'s {request} {status}";

    /// <summary>The ids a row may use: Alice's session, Bob's, a fresh request id, and a session nobody has yet (on the
    /// same partition).</summary>
    private sealed record Ids(Guid Alices, Guid Bobs, Guid Request, Guid Fresh);

    private sealed record AmqpCase(string Name, Func<Ids, string> Message, string? Code = null, bool ToSession = false,
        string? Reason = null, string? EnvelopeReason = null, bool WithoutUserId = false);

    private sealed record RestCase(string Name, HttpMethod Method, Func<Ids, string> Path, string? Body, string Expected,
        string ContentType = "application/json", Func<Ids, string>? BodyOf = null);

    private sealed record HubCase(string Name, string Expected, Func<HubConnection, Ids, Task> Call, bool OwnConnection = false);

    private sealed record Row(string EntryPoint, string Case, string Expected, string Observed);
}
