using System.Text;

namespace SpecLog;

/// <summary>
/// Record tags: a short key (a user, a sensor, a topic) given to a record when it is appended, stored with it on its
/// shard, delivered and read back with it, and matched by the shards against a <see cref="RecordFilter"/>.
/// </summary>
public static class RecordTags
{
    /// <summary>The longest tag, in UTF-8 bytes.</summary>
    public const int MaxBytes = 255;

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="tag"/> is a valid tag (1 to <see cref="MaxBytes"/> UTF-8 bytes).</summary>
    public static void Check(string? tag, string parameterName)
    {
        if (string.IsNullOrEmpty(tag))
        {
            throw new ArgumentException("A record tag cannot be empty (append without a tag instead).", parameterName);
        }

        var bytes = Encoding.UTF8.GetByteCount(tag);
        if (bytes > MaxBytes)
        {
            throw new ArgumentException($"The record tag has {bytes} UTF-8 bytes; the longest allowed is {MaxBytes}.", parameterName);
        }
    }
}

/// <summary>
/// A server-side subscription filter: the shards send a filtered subscription only the records whose tag equals one of
/// <see cref="Tags"/> or starts with one of <see cref="Prefixes"/>, and every other position (other records, untagged
/// records, no-op fillers) as skipped slots, so GSN-ordered delivery of a filtered stream waits for nothing more than
/// the whole log's and the network carries only what matches.
/// </summary>
/// <param name="Tags">Tags matched exactly.</param>
/// <param name="Prefixes">Tag prefixes.</param>
[GenerateSerializer, Immutable, Alias("speclog.RecordFilter")]
public sealed record RecordFilter([property: Id(0)] string[] Tags, [property: Id(1)] string[] Prefixes)
{
    /// <summary>A filter that matches the records tagged with one of <paramref name="tags"/>.</summary>
    public static RecordFilter ForTags(params string[] tags) => Checked(new RecordFilter(tags, []));

    /// <summary>A filter that matches the records whose tag starts with one of <paramref name="prefixes"/>.</summary>
    public static RecordFilter ForPrefixes(params string[] prefixes) => Checked(new RecordFilter([], prefixes));

    /// <summary>Whether a record with <paramref name="tag"/> (null: untagged) passes. For many calls, use <see cref="CreateMatcher"/>.</summary>
    public bool Matches(string? tag) => CreateMatcher()(tag);

    /// <summary>A function that tells whether a record with a tag (null: untagged) passes, with the tags in a hash set.</summary>
    public Func<string?, bool> CreateMatcher()
    {
        var tags = new HashSet<string>(Tags, StringComparer.Ordinal);
        var prefixes = Prefixes.ToArray();
        return tag =>
        {
            if (tag is null)
            {
                return false;
            }

            if (tags.Contains(tag))
            {
                return true;
            }

            foreach (var prefix in prefixes)
            {
                if (tag.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return true;
                }
            }

            return false;
        };
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless the filter names at least one tag or prefix and each is a valid tag.</summary>
    public void Validate()
    {
        if (Tags is null || Prefixes is null || Tags.Length + Prefixes.Length == 0)
        {
            throw new ArgumentException("A record filter needs at least one tag or tag prefix.", "filter");
        }

        if (Tags.Length + Prefixes.Length > 1024)
        {
            throw new ArgumentException($"A record filter names {Tags.Length + Prefixes.Length} tags and prefixes; at most 1024 are allowed.", "filter");
        }

        foreach (var t in Tags.Concat(Prefixes))
        {
            RecordTags.Check(t, "filter");
        }
    }

    /// <inheritdoc/>
    public override string ToString() =>
        string.Join(", ", Tags.Select(t => $"tag = {t}").Concat(Prefixes.Select(p => $"tag starts with {p}")));

    private static RecordFilter Checked(RecordFilter filter)
    {
        filter.Validate();
        return filter;
    }
}
