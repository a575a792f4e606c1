namespace Workers.Core.Migrations;

public sealed class MigrationFailedException(string message) : Exception(message);
