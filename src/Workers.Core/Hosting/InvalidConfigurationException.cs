namespace Workers.Core.Hosting;

/// <summary>A setting is missing or malformed; the message names the key and never includes a secret.</summary>
public sealed class InvalidConfigurationException(string message) : Exception(message);
