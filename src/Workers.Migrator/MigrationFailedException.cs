namespace Workers.Migrator;

public sealed class MigrationFailedException(string message) : Exception(message);
