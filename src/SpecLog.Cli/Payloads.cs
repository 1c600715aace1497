using System.Text;

namespace SpecLog.Cli;

/// <summary>How records are shown: as text when they are printable UTF-8, else as hex (at most 64 bytes); a tag in brackets before.</summary>
internal static class Payloads
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static string Show(ReadOnlySpan<byte> payload)
    {
        try
        {
            var text = Strict.GetString(payload);
            if (!text.Any(c => char.IsControl(c) && c is not '\t'))
            {
                return text;
            }
        }
        catch (DecoderFallbackException)
        {
        }

        var shown = Convert.ToHexString(payload[..Math.Min(payload.Length, 64)]).ToLowerInvariant();
        return payload.Length > 64 ? $"0x{shown}… ({payload.Length} bytes)" : $"0x{shown}";
    }

    /// <summary>"[tag] " for a tagged record, nothing for an untagged one.</summary>
    public static string TagOf(string? tag) => tag is null ? "" : $"[{tag}] ";
}
