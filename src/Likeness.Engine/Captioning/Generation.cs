using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Captioning;

/// <summary>
/// How a caption is decoded, as in transformers' <c>generate</c>: beams (1 = greedy), the length budget, whether beam
/// search stops as soon as it holds <see cref="NumBeams"/> finished captions, the n-gram size that may not repeat
/// (0 = any may), the length penalty (scores are log-probability sums divided by length^penalty) and the token
/// forced at the last position (Florence-2's BART forces its end token there).
/// </summary>
public sealed record GenerationSettings(int NumBeams, int MaxNewTokens, bool EarlyStopping, int NoRepeatNgramSize,
    double LengthPenalty = 1.0, int? ForcedEosTokenId = null, int? ForcedBosTokenId = null)
{
    /// <summary>
    /// What the trainers that caption with Florence-2 ask of it (3 beams, no repeated trigram, up to 1024 new tokens),
    /// with the end token forced at the last position as Florence-2's BART does.
    /// </summary>
    public static GenerationSettings Florence2Captions(int forcedEos) => new(3, 1024, true, 3, 1.0, forcedEos);

    /// <summary>
    /// <paramref name="defaults"/> overridden by a model folder's <c>generation_config.json</c> where it has the key
    /// (num_beams, no_repeat_ngram_size, early_stopping, length_penalty, forced_bos/eos_token_id, max_new_tokens).
    /// </summary>
    public static GenerationSettings FromFolder(string folder, GenerationSettings defaults)
    {
        var path = Path.Combine(folder, "generation_config.json");
        if (!File.Exists(path)) return defaults;
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        int? Int(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.Number ? v.GetInt32() : null;
        var early = root.TryGetProperty("early_stopping", out var e) && e.ValueKind is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False
            ? e.GetBoolean() : defaults.EarlyStopping;
        var penalty = root.TryGetProperty("length_penalty", out var lp) && lp.ValueKind == System.Text.Json.JsonValueKind.Number ? lp.GetDouble() : defaults.LengthPenalty;
        return defaults with
        {
            NumBeams = Int("num_beams") ?? defaults.NumBeams,
            NoRepeatNgramSize = Int("no_repeat_ngram_size") ?? defaults.NoRepeatNgramSize,
            EarlyStopping = early,
            LengthPenalty = penalty,
            MaxNewTokens = Int("max_new_tokens") ?? defaults.MaxNewTokens,
            ForcedEosTokenId = Int("forced_eos_token_id") ?? defaults.ForcedEosTokenId,
            ForcedBosTokenId = Int("forced_bos_token_id") ?? defaults.ForcedBosTokenId,
        };
    }
}

/// <summary>Decoded sequences (each starting with the decoder's start token, padded to one length) and, for beams, their scores.</summary>
public sealed record Generated(long[][] Sequences, float[]? Scores);

/// <summary>
/// Greedy and beam-search decoding of Florence-2's BART decoder over cached keys and values, step for step the
/// algorithm of transformers (its vectorised beam search: 2·beams candidates a step, finished candidates among the
/// top beams kept by length-normalised score, the early-stop heuristic, float32 scores).
/// </summary>
public static class Florence2Generation
{
    private const float Unreachable = -1.0e9f;

    /// <param name="encoderStates">[B, S, D] from <see cref="Florence2Model.Encode"/>.</param>
    /// <param name="mask">[B, S], 1 = attend; null: no padding.</param>
    public static Generated Greedy(Florence2Model model, Tensor encoderStates, Tensor? mask, GenerationSettings settings)
    {
        var text = model.Params.Text;
        var batch = (int)encoderStates.shape[0];
        var maxLength = 1 + settings.MaxNewTokens;
        var sequences = Enumerable.Range(0, batch).Select(_ => new List<long> { text.DecoderStartTokenId }).ToArray();
        var unfinished = Enumerable.Repeat(true, batch).ToArray();
        using var cache = new BartCache(text.DecoderLayers);
        using var _ = no_grad();
        while (true)
        {
            var curLength = sequences[0].Count;
            var logits = StepLogits(model, sequences, encoderStates, mask, cache, logSoftmax: false);
            for (var b = 0; b < batch; b++)
            {
                var row = logits[b];
                Process(row, sequences[b], curLength, maxLength, settings);
                var next = unfinished[b] ? ArgMax(row) : text.PadTokenId;
                sequences[b].Add(next);
                if (next == text.EosTokenId) unfinished[b] = false;
            }
            if (curLength + 1 >= maxLength || !unfinished.Any(u => u)) break;
        }
        return new Generated(sequences.Select(s => s.ToArray()).ToArray(), null);
    }

    /// <summary>Beam search (<see cref="GenerationSettings.NumBeams"/> beams); returns the best finished sequence of each row and its score.</summary>
    public static Generated BeamSearch(Florence2Model model, Tensor encoderStates, Tensor? mask, GenerationSettings settings)
    {
        var text = model.Params.Text;
        var (batch, beams) = ((int)encoderStates.shape[0], settings.NumBeams);
        var keep = 2 * beams;                                       // enough that `beams` unfinished candidates remain
        var maxLength = 1 + settings.MaxNewTokens;
        var vocab = text.VocabSize;

        var running = new List<long>[batch * beams];
        for (var r = 0; r < running.Length; r++) running[r] = [text.DecoderStartTokenId];
        var runningScores = new float[batch * beams];
        for (var b = 0; b < batch; b++) for (var k = 1; k < beams; k++) runningScores[b * beams + k] = Unreachable;   // only beam 0 expands at first
        var finished = new List<long>[batch * beams];
        for (var r = 0; r < finished.Length; r++) finished[r] = [text.DecoderStartTokenId];
        var finishedScores = Enumerable.Repeat(Unreachable, batch * beams).ToArray();
        var isFinished = new bool[batch * beams];
        var improvable = Enumerable.Repeat(true, batch).ToArray();

        using var _ = no_grad();
        using var expandedMask = mask?.repeat_interleave(beams, 0);
        using var cache = new BartCache(text.DecoderLayers, beams);
        var curLength = 1;
        while (true)
        {
            var logProbs = StepLogits(model, running, encoderStates, expandedMask, cache, logSoftmax: true);
            for (var r = 0; r < running.Length; r++) Process(logProbs[r], running[r], curLength, maxLength, settings);

            var nextRunning = new List<long>[running.Length];
            var nextScores = new float[running.Length];
            var sourceRows = new long[running.Length];
            var allHit = true;
            for (var b = 0; b < batch; b++)
            {
                // Top 2·beams continuations of this row's beams, by accumulated log-probability. A beam adds one
                // number to all its tokens, so only each beam's own top 2·beams tokens can be among them; they are
                // listed in (beam, token) order so that equal scores rank as in the flat [beams × vocab] order.
                var candidates = new List<(float Score, int Beam, int Token)>(beams * keep);
                for (var k = 0; k < beams; k++)
                {
                    var row = logProbs[b * beams + k];
                    foreach (var v in TopK(Enumerable.Range(0, vocab).ToArray(), keep, v => row[v]).Order())
                        candidates.Add((row[v] + runningScores[b * beams + k], k, v));
                }
                var top = TopK(candidates.ToArray(), keep, c => c.Score);
                var hits = top.Select(c => c.Token == text.EosTokenId || curLength + 1 >= maxLength).ToArray();
                allHit &= hits.All(h => h);

                // The best `beams` unfinished candidates run on.
                var runOn = TopK(Enumerable.Range(0, keep).ToArray(), beams, j => top[j].Score + (hits[j] ? Unreachable : 0f));
                for (var k = 0; k < beams; k++)
                {
                    var j = runOn[k];
                    var row = b * beams + k;
                    nextRunning[row] = [.. running[b * beams + top[j].Beam], top[j].Token];
                    nextScores[row] = top[j].Score + (hits[j] ? Unreachable : 0f);
                    sourceRows[row] = b * beams + top[j].Beam;
                }

                // Finished candidates among the top `beams` join the finished set if they beat its worst.
                var full = settings.EarlyStopping && Enumerable.Range(0, beams).All(k => isFinished[b * beams + k]);
                var length = (float)Math.Pow(curLength + 1 - 1, settings.LengthPenalty);
                var pool = new List<(float Score, List<long> Sequence, bool Finished)>();
                for (var k = 0; k < beams; k++) pool.Add((finishedScores[b * beams + k], finished[b * beams + k], isFinished[b * beams + k]));
                for (var j = 0; j < keep; j++)
                {
                    var justFinished = hits[j] && j < beams;
                    var score = top[j].Score / length;
                    if (full) score += Unreachable;
                    if (!improvable[b]) score += Unreachable;
                    if (!justFinished) score += Unreachable;
                    pool.Add((score, [.. running[b * beams + top[j].Beam], top[j].Token], justFinished));
                }
                var best = TopK(pool.ToArray(), beams, p => p.Score);
                for (var k = 0; k < beams; k++) (finishedScores[b * beams + k], finished[b * beams + k], isFinished[b * beams + k]) = best[k];
            }

            running = nextRunning;
            runningScores = nextScores;
            using (var rows = tensor(sourceRows, device: encoderStates.device)) cache.Reorder(rows);
            curLength++;

            for (var b = 0; b < batch; b++)
            {
                if (!improvable[b]) continue;
                // Could the best running beam, ended now, still beat a finished one? (transformers' heuristic)
                var bestPossible = runningScores[b * beams] / (float)Math.Pow(curLength - 1, settings.LengthPenalty);
                var worst = Enumerable.Range(0, beams).Min(k => finishedScores[b * beams + k]);
                improvable[b] = Enumerable.Range(0, beams).Any(k => bestPossible > (isFinished[b * beams + k] ? worst : Unreachable));
            }
            var everyBeamFinished = settings.EarlyStopping && isFinished.All(f => f);
            if (!improvable.Any(i => i) || everyBeamFinished || allHit) break;
        }

        var chosen = Enumerable.Range(0, batch).Select(b => finished[b * beams]).ToArray();
        var width = chosen.Max(s => s.Count);
        var padded = chosen.Select(s => s.Concat(Enumerable.Repeat((long)text.PadTokenId, width - s.Count)).ToArray()).ToArray();
        return new Generated(padded, Enumerable.Range(0, batch).Select(b => finishedScores[b * beams]).ToArray());
    }

    /// <summary>Runs the decoder on each row's last token; returns per row the (log-softmaxed) float32 scores.</summary>
    private static float[][] StepLogits(Florence2Model model, IReadOnlyList<List<long>> rows, Tensor encoderStates, Tensor? mask, BartCache cache, bool logSoftmax)
    {
        using var scope = NewDisposeScope();
        var last = tensor(rows.Select(r => r[^1]).ToArray(), device: encoderStates.device).unsqueeze(1);
        var logits = model.Language.Decode(last, encoderStates, mask, cache)[.., -1, ..].to_type(ScalarType.Float32);
        if (logSoftmax) logits = logits.log_softmax(-1);
        var flat = logits.contiguous().data<float>().ToArray();
        var vocab = (int)logits.shape[1];
        return Enumerable.Range(0, rows.Count).Select(r => flat.AsSpan(r * vocab, vocab).ToArray()).ToArray();
    }

    /// <summary>transformers' logits processors that Florence-2's settings turn on: no repeated n-gram, forced start and end tokens.</summary>
    private static void Process(float[] scores, List<long> sequence, int curLength, int maxLength, GenerationSettings settings)
    {
        var n = settings.NoRepeatNgramSize;
        if (n > 0 && curLength + 1 >= n)
        {
            // Any earlier n-gram whose first n−1 tokens equal the last n−1 tokens may not be completed again.
            for (var i = 0; i + n <= curLength; i++)
            {
                var match = true;
                for (var j = 0; j < n - 1 && match; j++) match = sequence[i + j] == sequence[curLength - n + 1 + j];
                if (match) scores[sequence[i + n - 1]] = float.NegativeInfinity;
            }
        }
        if (settings.ForcedBosTokenId is { } bos && curLength == 1)
        {
            Array.Fill(scores, float.NegativeInfinity);
            scores[bos] = 0f;
        }
        if (settings.ForcedEosTokenId is { } eos && curLength == maxLength - 1)
        {
            Array.Fill(scores, float.NegativeInfinity);
            scores[eos] = 0f;
        }
    }

    private static int ArgMax(float[] values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    /// <summary>The k largest by key, largest first; of equal keys the earlier comes first (one pass, k kept sorted).</summary>
    private static T[] TopK<T>(T[] items, int k, Func<T, float> key)
    {
        var kept = new List<(float Key, T Item)>(k + 1);
        foreach (var item in items)
        {
            var value = key(item);
            if (kept.Count == k && !(value > kept[^1].Key)) continue;
            var at = kept.Count;
            while (at > 0 && value > kept[at - 1].Key) at--;
            kept.Insert(at, (value, item));
            if (kept.Count > k) kept.RemoveAt(k);
        }
        return kept.Select(x => x.Item).ToArray();
    }
}
