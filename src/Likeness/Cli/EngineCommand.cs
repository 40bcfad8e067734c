using System.CommandLine;

namespace Likeness.Cli;

/// <summary><c>likeness engine …</c>: the FLUX engine's own verbs (forward, bench, train, generate).</summary>
internal static class EngineCommand
{
    public static Command Create()
    {
        var engine = new Command("engine", "Run the FLUX engine directly: forward, bench, train, generate.");
        return engine;
    }
}
