using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Core.Telemetry;
using Workers.Worker.Model;
using Workers.Worker.Tools;

namespace Workers.Worker.Turns;

/// <summary>
/// The model's side of a turn: a kernel with this turn's tools, the streaming call under its timeout, reply events as
/// the text arrives, and the usage the provider reports. The one place where a tool is registered.
/// </summary>
public sealed class ModelCall(SessionStore store, IChatCompletionService model, IOptions<ModelOptions> options, ILogger<ModelCall> logger)
{
    private readonly ModelOptions _options = options.Value;

    /// <summary>Streams the reply into <paramref name="reply"/>. A cancel or a failing provider ends the call with the
    /// text so far kept; anything else (the broker or the database gone) is thrown to the caller.</summary>
    /// <param name="request">The request being answered.</param>
    /// <param name="history">The session's earlier turns, oldest first.</param>
    /// <param name="reply">Where the text goes, as events.</param>
    /// <param name="turnStarted">The turn's <see cref="Stopwatch.GetTimestamp"/>, for time to first token.</param>
    /// <param name="cancel">A user's <c>CancelTurn</c>.</param>
    public async Task<ModelCallResult> StreamAsync(ChatRequested request, IReadOnlyList<(string User, string Reply)> history,
        TurnReply reply, long turnStarted, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(reply);
        int promptTokens = 0, completionTokens = 0;
        double firstTokenMs = 0;
        var (provider, modelName) = _options.Provider == "OpenAI" ? ("openai", _options.OpenAI.Model) : ("offline", "offline");
        using var span = WorkersTelemetry.Source.StartActivity($"chat {modelName}", ActivityKind.Client);
        span?.SetTag("gen_ai.operation.name", "chat");
        span?.SetTag("gen_ai.provider.name", provider);
        span?.SetTag("gen_ai.request.model", modelName);
        try
        {
            await reply.StartedAsync(CancellationToken.None);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(_options.CallTimeout);
            var chat = TurnHistory.Build(_options.SystemPrompt, history, request.Text, _options.HistoryBudgetChars);
            var settings = new OpenAIPromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Auto() };
            await foreach (var chunk in model.GetStreamingChatMessageContentsAsync(chat, settings, KernelFor(request, reply), timeout.Token))
            {
                if (firstTokenMs == 0 && !string.IsNullOrEmpty(chunk.Content))
                {
                    firstTokenMs = Stopwatch.GetElapsedTime(turnStarted).TotalMilliseconds;
                }

                await reply.AppendAsync(chunk.Content, CancellationToken.None);
                (promptTokens, completionTokens) = Usage(chunk.Metadata) ?? (promptTokens, completionTokens);
            }

            await reply.FlushAsync(CancellationToken.None);
            return Result(TurnStatus.Complete, null);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            await reply.FlushAsync(CancellationToken.None);
            return Result(TurnStatus.Cancelled, ErrorCodes.Cancelled);
        }
        catch (Exception e) when (e is HttpOperationException or OperationCanceledException or HttpRequestException
                                       or System.ClientModel.ClientResultException or IOException or TimeoutException)
        {
            // The client already retried timeouts, 429 and 5xx with backoff; text streamed before a break is kept.
            logger.LogWarning("Model call of turn {RequestId} in session {SessionId} failed: {Error}",
                request.RequestId, request.SessionId, e.GetType().Name);
            await reply.FlushAsync(CancellationToken.None);
            return Result(TurnStatus.Failed, ErrorCodes.ModelError);
        }

        ModelCallResult Result(string status, string? errorCode)
        {
            var result = new ModelCallResult(status, errorCode, promptTokens,
                completionTokens == 0 ? EstimateTokens(reply.Text) : completionTokens, firstTokenMs);
            span?.SetTag("gen_ai.usage.input_tokens", result.PromptTokens);
            span?.SetTag("gen_ai.usage.output_tokens", result.CompletionTokens);
            if (errorCode is not null && status == TurnStatus.Failed)
            {
                span?.SetStatus(ActivityStatusCode.Error, errorCode);
            }

            return result;
        }
    }

    /// <summary>A kernel per turn: its tools are bound to this turn's user and session, never to arguments the model
    /// chooses, and every call the model makes is reported as <c>ToolInvoked</c>.</summary>
    private Kernel KernelFor(ChatRequested request, TurnReply reply)
    {
        var kernel = new Kernel();
        kernel.Plugins.AddFromObject(new SessionNotesPlugin(store, request.UserId, request.SessionId), "notes");
        kernel.FunctionInvocationFilters.Add(new ToolEventFilter(reply));
        return kernel;
    }

    /// <summary>Token counts from the last chunk: the offline model's own keys, or the OpenAI connector's usage.</summary>
    private static (int Prompt, int Completion)? Usage(IReadOnlyDictionary<string, object?>? metadata) =>
        metadata switch
        {
            { } m when m.TryGetValue("PromptTokens", out var p) && p is int prompt && m.TryGetValue("CompletionTokens", out var c)
                && c is int completion => (prompt, completion),
            { } m when m.TryGetValue("Usage", out var u) && u is OpenAI.Chat.ChatTokenUsage usage =>
                (usage.InputTokenCount, usage.OutputTokenCount),
            _ => null,
        };

    private static int EstimateTokens(string text) => (text.Length + 3) / 4;
}
