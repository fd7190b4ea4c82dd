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
