using System.CommandLine;
using System.CommandLine.Parsing;
using MoeSharp.Autograd;
using MoeSharp.IO;
using MoeSharp.Training;

namespace MoeSharp.Cli;

/// <summary>
/// Turns the errors a user can cause (bad files, bad values, a NaN in training) into one line on stderr and exit
/// code 2, with no stack trace. Anything else is a bug and keeps its trace.
/// </summary>
internal static class CliErrors
{
    public const int UsageError = 2;

    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception ex) when (IsUserError(ex))
        {
            Console.Error.WriteLine($"error: {OneLine(ex)}");
            return UsageError;
        }
    }

    /// <summary>
    /// A command line that did not parse (an unknown command or option, a value that is not a number or out of range,
    /// a missing required option): the first problem on one line, prefixed by the command it belongs to.
    /// </summary>
    public static int Usage(ParseResult parse)
    {
        string path = CommandPath(parse.CommandResult);
        string problem;
        if (parse.UnmatchedTokens.Count > 0)
        {
            string token = parse.UnmatchedTokens[0];
            problem = token.StartsWith('-') ? $"unknown option '{token}'"
                : parse.CommandResult.Parent is null ? $"unknown command '{token}'; expected one of {Subcommands(parse.CommandResult.Command)}"
                : $"unexpected argument '{token}'";
        }
        else if (parse.CommandResult.Parent is null && parse.Errors.All(e => e.SymbolResult == parse.CommandResult))
        {
            problem = $"no command given; expected one of {Subcommands(parse.CommandResult.Command)}";
        }
        else
        {
            problem = parse.Errors[0].Message.TrimEnd('.');
        }
        Console.Error.WriteLine($"error: {path}: {problem.ReplaceLineEndings(" ")} (see '{path} --help')");
        return UsageError;
    }

    /// <summary>"moe train", whatever name the process was started under.</summary>
    private static string CommandPath(CommandResult command)
    {
        var names = new List<string>();
        for (SymbolResult? r = command; r is CommandResult c; r = c.Parent)
            names.Insert(0, c.Parent is null ? "moe" : c.Command.Name);
        return string.Join(' ', names);
    }

    private static string Subcommands(Command command) => string.Join(", ", command.Subcommands.Select(c => c.Name));

    /// <summary>The message without .NET's "(Parameter 'x')" suffixes, on one line.</summary>
    private static string OneLine(Exception ex)
    {
        string message = ex.Message;
        for (var e = ex; e is not null; e = e.InnerException)
            if (e is ArgumentException { ParamName: { } name }) message = message.Replace($" (Parameter '{name}')", "");
        return message.ReplaceLineEndings(" ");
    }

    private static bool IsUserError(Exception ex) => ex is ArgumentException or IOException or InvalidDataException
        or FormatException or SafetensorsFormatException or NonFiniteException or System.Text.Json.JsonException
        or UnauthorizedAccessException or KeyNotFoundException or Classic.Models.ExpertFailureException;
}
