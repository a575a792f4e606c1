using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace Workers.Core.Hosting;

/// <summary>
/// The passwords and the signing key this repository ships for Development and the local scripts. They are public,
/// so outside Development a host that finds one of them in its settings refuses to start, naming the setting.
/// </summary>
public static class DevelopmentSecrets
{
    public const string SigningKey = "development-only-signing-key-not-for-production-use-0123456789";

    private static readonly HashSet<string> Passwords =
        ["postgres", "workers", "workers_app", "workers_worker", "workers_notifier", "guest", "admin", "password"];

    public static bool IsKnown(string? secret) => secret is not null && (Passwords.Contains(secret) || secret == SigningKey);

    /// <summary>Throws, naming the first setting that holds a known development secret, unless in Development.</summary>
    public static void RefuseOutsideDevelopment(IHostApplicationBuilder builder, params string[] keys)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(keys);
        if (builder.Environment.IsDevelopment())
        {
            return;
        }

        foreach (var key in keys)
        {
            var value = key.StartsWith("ConnectionStrings:", StringComparison.Ordinal)
                ? ConnectionStrings.Read(builder.Configuration, key["ConnectionStrings:".Length..]).Password
                : builder.Configuration[key];
            if (IsKnown(value))
            {
                throw new InvalidConfigurationException(
                    $"{key} holds a development secret that this repository publishes; outside Development set your own " +
                    $"(environment: {key.Replace(":", "__", StringComparison.Ordinal)})");
            }
        }
    }
}
