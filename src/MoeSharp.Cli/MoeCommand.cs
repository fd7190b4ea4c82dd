using System.CommandLine;
using MoeSharp.Cli.Commands;

namespace MoeSharp.Cli;

/// <summary>The `moe` command line: every subcommand, and the error handling that makes user errors one line.</summary>
internal static class MoeCommand
{
    public static int Run(string[] args)
    {
        var root = new RootCommand("moe: build, train, run, inspect and save Mixture-of-Experts models.")
        {
            TrainCommand.Create(),
            GenerateCommand.Create(),
            EvalCommand.Create(),
            InspectCommand.Create(),
            FitCommand.Create(),
            BenchCommand.Create(),
            PredictCommand.Create(),
        };
        // Our own handler turns user errors into one line and exit code 2; System.CommandLine's would print a stack trace.
        return CliErrors.Run(() => root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false }));
    }
}
