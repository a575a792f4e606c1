using System.ComponentModel.DataAnnotations;

namespace Workers.Notifier.Chat;

/// <summary>
/// What the chat page is told at <c>GET /page-config.json</c>; section <c>Page</c>. With several notifiers, list them
/// all (each notifier's own <c>Limits:AllowedOrigins</c> must then name the others' origins, for the hub and for
/// CORS): a page whose notifier is gone moves to the next and resumes its chats from the last seq it saw.
/// </summary>
public sealed class PageOptions : IValidatableObject
{
    public const string SectionName = "Page";

    /// <summary>Base URLs (<c>https://chat-1.example.com</c>); empty: the page's own notifier only.</summary>
    public string[] NotifierUrls { get; set; } = [];

    /// <summary>Model names a chat's settings offer (the workers' <c>Llm:Models</c> names); a user may type another,
    /// and a name the workers lack fails that chat's next turn with <c>invalid_request</c>.</summary>
    public string[] Models { get; set; } = [];

    /// <summary>Tool server names a chat's settings mention (the workers' <c>Tools:Mcp</c> names).</summary>
    public string[] Tools { get; set; } = [];

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        foreach (var model in Models.Where(m => !Workers.Contracts.ChatLimits.IsModelName(m)))
        {
            yield return new ValidationResult($"'{model}' is not a model name", [nameof(Models)]);
        }

        foreach (var tool in Tools.Where(t => !Workers.Contracts.ChatLimits.IsToolServerName(t)))
        {
            yield return new ValidationResult($"'{tool}' is not a tool server name", [nameof(Tools)]);
        }

        foreach (var url in NotifierUrls)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)
                || uri.PathAndQuery != "/")
            {
                yield return new ValidationResult($"'{url}' is not a base URL like https://chat-1.example.com", [nameof(NotifierUrls)]);
            }
        }
    }
}
