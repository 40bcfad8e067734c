namespace Likeness.Tests.Infrastructure;

/// <summary>Tests that run several servers or child processes: one at a time, so they do not starve each other's leases.</summary>
[CollectionDefinition(Name)]
public sealed class ProcessTests
{
    public const string Name = "processes";
}
