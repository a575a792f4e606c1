using System.ClientModel;
using System.ClientModel.Primitives;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using OpenAI;
using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Worker.Memory;

namespace Workers.Worker.Model;

/// <summary>One model a turn can use: the service that streams, what it can take and costs, and its memory (token
/// counts and summaries are per model: a window and a tokenizer are the model's own).</summary>
/// <param name="Name">The name a session chooses it by (<see cref="ChatModels.DefaultName"/> for the default).</param>
/// <param name="Service">The Semantic Kernel chat service.</param>
/// <param name="Limits">Context window, output reserve, tokenizer and prices.</param>
/// <param name="Provider">What the usage records say: <c>offline</c> or <c>openai</c>.</param>
/// <param name="ModelId">The provider's model id.</param>
/// <param name="Memory">Plans, folds and counts for this model.</param>
public sealed record ChatModel(string Name, IChatCompletionService Service, ContextLimits Limits, string Provider, string ModelId,
    ConversationMemory Memory);

/// <summary>
/// The models of this deployment: the default one (<c>Llm:Provider</c>, with <c>Llm:Offline</c> or <c>Llm:OpenAI</c>)
/// and the named ones a session may choose (<c>Llm:Models:NAME</c>). Built once, as the worker starts, so a wrong
/// endpoint stops the worker there and not in a user's turn.
/// </summary>
public sealed class ChatModels
{
    /// <summary>What a session's model is called when it has none of its own.</summary>
    public const string DefaultName = "default";

    private readonly Dictionary<string, ChatModel> _named;

    public ChatModels(IChatCompletionService defaultService, IOptions<ModelOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var o = options.Value;
        var (provider, modelId) = o.Provider == "OpenAI" ? ("openai", o.OpenAI.Model ?? "") : ("offline", "offline");
        Default = new ChatModel(DefaultName, defaultService, o.Limits, provider, modelId, new ConversationMemory(defaultService, o.Limits, o));
        _named = o.Models.ToDictionary(m => m.Key, m =>
        {
            if (m.Value.Provider == "Offline")
            {
                var offline = new OfflineChatModel(options);
                return new ChatModel(m.Key, offline, o.Offline, "offline", "offline", new ConversationMemory(offline, o.Offline, o));
            }

            var service = new OpenAIChatCompletionService(m.Value.Model!, Client(m.Value, $"Llm:Models:{m.Key}"));
            return new ChatModel(m.Key, service, m.Value, "openai", m.Value.Model!, new ConversationMemory(service, m.Value, o));
        }, StringComparer.Ordinal);
    }

    public ChatModel Default { get; }

    /// <summary>The names a session may set, the default's first.</summary>
    public IEnumerable<string> Names => _named.Keys.Order(StringComparer.Ordinal).Prepend(DefaultName);

    /// <summary>The session's model; null or <see cref="DefaultName"/>: the default. A name this deployment does not
    /// have is the sender's error, told with the names there are.</summary>
    public ChatModel Resolve(string? name) =>
        name is null or DefaultName ? Default
        : _named.TryGetValue(name, out var model) ? model
        : throw new ChatErrorException(ErrorCodes.InvalidRequest,
            $"this session's model '{name}' is not one of this deployment's: {string.Join(", ", Names)}; set another with 'model'");

    /// <summary>Our own client, so the endpoint can be any OpenAI-compatible server and retries are bounded and
    /// configured: the pipeline retries timeouts, 429 and 5xx with exponential backoff and honours Retry-After.</summary>
    public static OpenAIClient Client(OpenAIModelOptions options, string section)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Uri.TryCreate(options.BaseUrl, UriKind.Absolute, out var endpoint))
        {
            throw new Workers.Core.Hosting.InvalidConfigurationException($"{section}:BaseUrl must be an absolute URL");
        }

        return new OpenAIClient(new ApiKeyCredential(string.IsNullOrEmpty(options.ApiKey) ? "none" : options.ApiKey),
            new OpenAIClientOptions
            {
                Endpoint = endpoint,
                RetryPolicy = new ClientRetryPolicy(options.Retries),
                NetworkTimeout = options.Timeout,
            });
    }
}
