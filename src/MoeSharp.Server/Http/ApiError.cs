using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace MoeSharp.Server.Http;

/// <summary>A request the server refuses, answered with its status and OpenAI's error shape.</summary>
internal sealed class ApiError(int status, string message, string? param = null, string? code = null, string? type = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    /// <summary>OpenAI's error type for the status: requests the client must change, rate limits, or our fault.</summary>
    public string Type { get; } = type ?? status switch
    {
        429 => "rate_limit_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    public static ApiError BadRequest(string message, string? param = null, string? code = null) => new(StatusCodes.Status400BadRequest, message, param, code);

    /// <summary><c>{"error":{"message","type","param","code"}}</c>.</summary>
    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", Message);
        w.WriteString("type", Type);
        w.WriteString("param", Param);
        w.WriteString("code", Code);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
