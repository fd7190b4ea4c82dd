using System.CommandLine;
using MoeSharp.Cli;
using MoeSharp.Cli.Commands;

var root = new RootCommand("moe: build, train, run, inspect and save Mixture-of-Experts models.")
{
    TrainCommand.Create(),
    FitCommand.Create(),
    PredictCommand.Create(),
};
return CliErrors.Run(() => root.Parse(args).Invoke());
