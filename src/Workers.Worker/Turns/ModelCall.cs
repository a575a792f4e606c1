using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Core.Telemetry;
using Workers.Worker.Memory;
using Workers.Worker.Model;
using Workers.Worker.Tools;
using Workers.Worker.Usage;

namespace Workers.Worker.Turns;

/// <summary>
/// The model's side of a turn: a kernel with this turn's tools, the streaming call under its timeout, reply events as
/// the text arrives, and the usage the provider reports. The one place where a tool is registered.
/// </summary>
public sealed class ModelCall(SessionStore store, ChatModels models, TurnBudget budget, McpToolServers toolServers,
    IOptions<ModelOptions> options, IOptions<ToolOptions> toolOptions, ILogger<ModelCall> logger)
{
    private readonly ModelOptions _options = options.Value;
    private readonly ToolOptions _tools = toolOptions.Value;

    /// <summary>Streams the reply into <paramref name="reply"/>. A cancel or a failing provider ends the call with the
    /// text so far kept; anything else (the broker or the database gone) is thrown to the caller.</summary>
    /// <param name="request">The request being answered.</param>
    /// <param name="session">The session's stored summary and the turns after it.</param>
    /// <param name="reply">Where the text goes, as events.</param>
    /// <param name="turnStarted">The turn's <see cref="Stopwatch.GetTimestamp"/>, for time to first token.</param>
    /// <param name="cancel">A user's <c>CancelTurn</c>.</param>
    public async Task<ModelCallResult> StreamAsync(ChatRequested request, TurnStart session, TurnReply reply, long turnStarted,
        CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(reply);
        int promptTokens = 0, cachedTokens = 0, completionTokens = 0, summaryPrompt = 0, summaryCached = 0, summaryCompletion = 0;
        SessionMemory? written = null;
        var estimatedPrompt = 0;
        double firstTokenMs = 0;
        // The session's model; one this deployment does not have refuses the turn before anything is spent.
        var chosen = models.Resolve(session.Settings.Model);
        // Likewise its tool servers; one that cannot be reached now is left out of this turn.
        var servers = toolServers.Resolve(session.Settings.Tools);
        var (memory, limits, provider, modelName) = (chosen.Memory, chosen.Limits, chosen.Provider, chosen.ModelId);
        using var span = WorkersTelemetry.Source.StartActivity($"chat {modelName}", ActivityKind.Client);
        span?.SetTag("gen_ai.operation.name", "chat");
        span?.SetTag("gen_ai.provider.name", provider);
        span?.SetTag("gen_ai.request.model", modelName);
        try
        {
            // All servers at once: a turn waits at most one ConnectTimeout for those still connecting.
            var found = await Task.WhenAll(servers.Select(server => toolServers.ToolsAsync(server, cancel)));
            var mcpTools = servers.Zip(found).Where(f => f.Second is not null)
                .Select(f => (Server: f.First, f.Second!.Value.Tools, f.Second!.Value.Settings)).ToList();

            // The tools' names, descriptions and schemas go with every request of the turn: they are part of the prompt.
            var toolTokens = mcpTools.SelectMany(s => s.Tools).Sum(t => memory.CountText($"{t.Name} {t.Description} {t.JsonSchema}"));
            var plan = memory.Plan(session.History, session.Memory, request.Text, session.Settings.SystemPrompt, toolTokens);
            estimatedPrompt = plan.PromptTokens;
            if (budget.Enabled)
            {
                // The most this turn may spend: the prompt, a fold's call (the folded turns and the summary) and a reply
                // of the whole reserve. Refused here, the model is never called.
                var promptMost = plan.PromptTokens + (plan.Fold.Count == 0 ? 0 : plan.FoldTokens + (2 * plan.SummaryBudget));
                await budget.ReserveAsync(request, promptMost + limits.OutputReserve,
                    limits.CostMicros(promptMost, 0, limits.OutputReserve));
            }

            await reply.StartedAsync(new TurnMemory(plan.PromptTokens, plan.Fold.Count > 0 ? plan.Fold[^1].TurnNo : session.Memory?.ThroughTurn,
                plan.Fold.Count > 0), CancellationToken.None);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(_options.CallTimeout);
            if (plan.Fold.Count > 0)
            {
                try
                {
                    // Its own deadline, half the call's: a summariser that hangs leaves the reply its time.
                    using var foldTimeout = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
                    foldTimeout.CancelAfter(_options.CallTimeout / 2);
                    using (WorkersTelemetry.Source.StartActivity("summarize history"))
                    {
                        (written, summaryPrompt, summaryCached, summaryCompletion) = await memory.FoldAsync(plan, foldTimeout.Token);
                    }

                    logger.LogInformation("Session {SessionId}: turns up to {ThroughTurn} folded into its summary for turn {RequestId}",
                        request.SessionId, written.ThroughTurn, request.RequestId);
                }
                catch (Exception e) when ((e is HttpOperationException or HttpRequestException or System.ClientModel.ClientResultException
                                               or IOException or TimeoutException or OperationCanceledException) && !timeout.IsCancellationRequested)
                {
                    // The reply still comes, from the recent turns alone this once; the next turn folds again.
                    logger.LogWarning("Session {SessionId}: summarising its older turns for turn {RequestId} failed ({Error}); " +
                        "they are left out of this turn", request.SessionId, request.RequestId, e.GetType().Name);
                }
            }

            var chat = memory.Build(plan.Keep, written ?? session.Memory, request.Text, session.Settings.SystemPrompt);
            var settings = new OpenAIPromptExecutionSettings
            {
                // Arguments as the model wrote them (numbers, booleans, arrays): by default SK hands every one over as a
                // string, which a server checking its schema refuses. Marked experimental in SK 1.82; without it MCP
                // tools with typed parameters do not work.
#pragma warning disable SKEXP0001
                FunctionChoiceBehavior = FunctionChoiceBehavior.Auto(options: new FunctionChoiceBehaviorOptions { RetainArgumentTypes = true }),
#pragma warning restore SKEXP0001
                // The reply may take the reserve and no more: what a budget reserved for it is then an upper bound.
                MaxTokens = limits.OutputReserve,
                // The session's choice, within what the deployment allows.
                Temperature = session.Settings.Temperature is { } temperature ? Math.Min(temperature, _options.MaxTemperature) : null,
            };
            await foreach (var chunk in chosen.Service.GetStreamingChatMessageContentsAsync(chat, settings, KernelFor(request, reply, mcpTools), timeout.Token))
            {
                if (firstTokenMs == 0 && !string.IsNullOrEmpty(chunk.Content))
                {
                    firstTokenMs = Stopwatch.GetElapsedTime(turnStarted).TotalMilliseconds;
                }

                await reply.AppendAsync(chunk.Content, CancellationToken.None);
                // One usage per model request: a tool round makes two, and the turn pays for both.
                if (ModelUsage.From(chunk.Metadata) is { } usage)
                {
                    promptTokens += usage.Prompt;
                    cachedTokens += usage.Cached;
                    completionTokens += usage.Completion;
                }
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
            // A summary is kept only with a complete reply: a failed or cancelled turn leaves the next one to fold again.
            // A provider that reports no usage is billed the estimate, not nothing.
            int prompt = (promptTokens == 0 ? estimatedPrompt : promptTokens) + summaryPrompt, cached = cachedTokens + summaryCached,
                completion = (completionTokens == 0 ? EstimateTokens(reply.Text) : completionTokens) + summaryCompletion;
            var result = new ModelCallResult(status, errorCode, prompt, completion, firstTokenMs,
                memory.CountTurn(request.Text, reply.Text, reply.ToolCalls), status == TurnStatus.Complete ? written : null,
                new TurnUsage(provider, modelName, cached, limits.CostMicros(prompt, cached, completion)));
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
    /// chooses, and every call the model makes goes through <see cref="ToolEventFilter"/> (events, cap, kept).</summary>
    private Kernel KernelFor(ChatRequested request, TurnReply reply,
        List<(string Server, IList<ModelContextProtocol.Client.McpClientTool> Tools, McpServerSettings Settings)> mcpTools)
    {
        var kernel = new Kernel();
        kernel.Plugins.AddFromObject(new SessionNotesPlugin(store, request.UserId, request.SessionId), "notes");
        foreach (var (server, tools, settings) in mcpTools)
        {
            var caller = settings.SendCaller ? McpTool.Caller(request.UserId, request.SessionId) : null;
            kernel.Plugins.AddFromFunctions(server, tools.Select(t => new McpTool(t, _tools.CallTimeout, caller).AsKernelFunction()));
        }

        var filter = new ToolEventFilter(reply, _tools.MaxResultChars);
        kernel.AutoFunctionInvocationFilters.Add(filter);
        kernel.FunctionInvocationFilters.Add(filter);
        return kernel;
    }

    private static int EstimateTokens(string text) => (text.Length + 3) / 4;
}
