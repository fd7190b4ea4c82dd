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
            ChatCommand.Create(),
            TokenizeCommand.Create(),
            RagCommand.Create(),
            ServeCommand.Create(),
            QuantizeCommand.Create(),
            SiloCommand.Create(),
        };
        // System.CommandLine's own reports would print the help page after a parse error and a stack trace after an
        // exception; ours are one line and exit code 2.
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0) return CliErrors.Usage(parse);
        return CliErrors.Run(() => parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false }));
    }
}
