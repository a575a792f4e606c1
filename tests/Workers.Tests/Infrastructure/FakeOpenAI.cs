using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Workers.Tests.Infrastructure;

/// <summary>
/// A local server speaking OpenAI's chat-completions protocol with SSE streaming, so the worker's real Semantic
/// Kernel connector runs against it. Each call takes the next scripted response; every request body is kept.
/// </summary>
public sealed class FakeOpenAI : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<Func<HttpContext, Task>> _script = new();
    private readonly ConcurrentQueue<(DateTime At, JsonElement Body, string? Authorization)> _requests = new();

    private FakeOpenAI(WebApplication app) => _app = app;

    public string BaseUrl { get; private set; } = "";

    public IReadOnlyList<(DateTime At, JsonElement Body, string? Authorization)> Requests => [.. _requests];

    public static async Task<FakeOpenAI> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var fake = new FakeOpenAI(app);
        app.MapPost("/v1/chat/completions", async context =>
        {
            var body = await JsonSerializer.DeserializeAsync<JsonElement>(context.Request.Body);
            fake._requests.Enqueue((DateTime.UtcNow, body, context.Request.Headers.Authorization.ToString()));
            if (fake._script.TryDequeue(out var respond))
            {
                await respond(context);
            }
            else
            {
                context.Response.StatusCode = 500;
                await context.Response.WriteAsync("""{"error":{"message":"no scripted response left","type":"server_error"}}""");
            }
        });
        await app.StartAsync();
        fake.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/v1";
        return fake;
    }

    public IReadOnlyDictionary<string, string> WorkerSettings => new Dictionary<string, string>
    {
        ["Llm__Provider"] = "OpenAI",
        ["Llm__OpenAI__BaseUrl"] = BaseUrl,
        ["Llm__OpenAI__Model"] = "fake-model",
        ["Llm__OpenAI__ApiKey"] = "test-key",
        ["Llm__OpenAI__Retries"] = "2",
    };

    public FakeOpenAI Text(params string[] chunks) => Then(async context =>
    {
        await StartStreamAsync(context);
        foreach (var chunk in chunks)
        {
            await ChunkAsync(context, new { role = "assistant", content = chunk }, null);
            await Task.Delay(20);
        }

        await ChunkAsync(context, new { }, "stop", new { prompt_tokens = 11, completion_tokens = chunks.Length, total_tokens = 11 + chunks.Length });
        await DoneAsync(context);
    });

    /// <summary>Holds the request longer than the client's timeout, then gives up on it.</summary>
    public FakeOpenAI Stall(TimeSpan howLong) => Then(async context =>
    {
        try
        {
            await Task.Delay(howLong, context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            // The client timed out and went away, as intended.
        }
    });

    public FakeOpenAI ToolCall(string function, string argumentsJson, string id = "call_1") => Then(async context =>
    {
        await StartStreamAsync(context);
        await ChunkAsync(context, new
        {
            role = "assistant",
            tool_calls = new[] { new { index = 0, id, type = "function", function = new { name = function, arguments = "" } } },
        }, null);
        await ChunkAsync(context, new { tool_calls = new[] { new { index = 0, function = new { arguments = argumentsJson } } } }, null);
        await ChunkAsync(context, new { }, "tool_calls");
        await DoneAsync(context);
    });

    public FakeOpenAI TextThenDisconnect(params string[] chunks) => Then(async context =>
    {
        await StartStreamAsync(context);
        foreach (var chunk in chunks)
        {
            await ChunkAsync(context, new { role = "assistant", content = chunk }, null);
        }

        await Task.Delay(100);
        context.Abort();
    });

    public FakeOpenAI Status(int status, string? retryAfter = null) => Then(async context =>
    {
        context.Response.StatusCode = status;
        if (retryAfter is not null)
        {
            context.Response.Headers.RetryAfter = retryAfter;
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new
        {
            error = new { message = $"scripted {status} with internal detail sk-secret", type = "server_error" },
        }));
    });

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    private FakeOpenAI Then(Func<HttpContext, Task> respond)
    {
        _script.Enqueue(respond);
        return this;
    }

    private static async Task StartStreamAsync(HttpContext context)
    {
        context.Response.ContentType = "text/event-stream";
        await context.Response.Body.FlushAsync();
    }

    private static async Task ChunkAsync(HttpContext context, object delta, string? finish, object? usage = null)
    {
        var chunk = new
        {
            id = "chatcmpl-fake", @object = "chat.completion.chunk", created = 1_700_000_000, model = "fake-model",
            choices = new[] { new { index = 0, delta, finish_reason = finish } },
            usage,
        };
        await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(chunk) + "\n\n", Encoding.UTF8);
        await context.Response.Body.FlushAsync();
    }

    private static async Task DoneAsync(HttpContext context)
    {
        await context.Response.WriteAsync("data: [DONE]\n\n");
        await context.Response.Body.FlushAsync();
    }
}
