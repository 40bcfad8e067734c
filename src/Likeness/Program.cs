using System.CommandLine;
using Likeness.Cli;

var root = new RootCommand("Likeness: train personal FLUX.1 LoRAs and generate photos of the subject.")
{
    EngineCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
