namespace Likeness.Tests.Infrastructure;

/// <summary>One server shared by the tests of a class.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public LikenessServer Server { get; private set; } = null!;
    public async Task InitializeAsync() => Server = await LikenessServer.StartAsync();
    public async Task DisposeAsync() => await Server.DisposeAsync();
}
