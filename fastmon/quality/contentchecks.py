"""The checks of a run's histograms (what ALICE QC's checks do with its tasks' objects), run
after each content cycle. Each judges every detector of the map, or only ``detector``; its
verdict is the worst over the detectors, its reason names them, and it keeps each detector's
result in its memory (``"detectors"``; ReferenceComparison each histogram's too), which the
content API serves so a page can colour each panel. Numpy on the histograms' views, never a
Python loop over bins: a cycle costs milliseconds whatever the channels."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import boost_histogram as bh
import numpy as np

from fastmon.content.detectors import Detector
from fastmon.content.histograms import Content
from fastmon.models import CheckState, Run
from fastmon.quality.framework import Check, ContentSeen, RunFacts, configured_checks
from fastmon.quality.verdicts import Quality, Verdict, good, worst

SHOWN = 10  # channels or sources named in a reason
OVER = ("window", "run", "cycle")  # what a check judges: the moving window, the run, the delta

Judged = tuple[Verdict, dict[str, Any]]  # a detector's verdict, and what is kept beside it


class DetectorCheck(Check):
    """A check of each detector's content in turn. ``over``: the moving window (a fault that
    ended clears once the window no longer holds it), the whole run, or the cycle's delta;
    ``min_entries``: below it the check says null (too few to judge)."""

    detector: str | None = None  # None: every detector of the map
    over = "window"
    min_entries = 1000
    # Parameters that take one of a few words, each checked at start-up.
    _choices: ClassVar[dict[str, tuple[str, ...]]] = {"over": OVER}

    def __init__(self, name: str | None = None, **params: Any) -> None:
        super().__init__(name, **params)
        for key, allowed in self._choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{self.name}: {key} must be one of {', '.join(allowed)}")

    def on_content(self, memory: dict, run: RunFacts, content: ContentSeen) -> Verdict | None:
        judged = {"window": content.window, "run": content.whole, "cycle": content.delta}
        results = {}
        for detector in content.detectors:
            if self.detector in (None, detector.name):
                verdict, kept = self.judge(memory, detector, judged[self.over], content)
                results[detector.name] = {"quality": verdict.quality.value,
                                          "reason": verdict.reason, **kept}  # fmt: skip
        memory["detectors"] = results
        return overall(results)

    def judge(self, memory: dict, detector: Detector, judged: Content,
              content: ContentSeen) -> Judged:  # fmt: skip
        raise NotImplementedError

    def too_few(self, detector: Detector, entries: float, what: str = "hits") -> Judged:
        return Verdict(Quality.NULL, f"{detector.name}: {entries:.0f} {what}, too few to judge "
                                     f"(min_entries {self.min_entries})"), {}  # fmt: skip


def overall(results: dict[str, dict[str, Any]]) -> Verdict | None:
    """The worst of the detectors' results, its reason those of the detectors that gave it."""
    if not results:
        return None
    quality = worst(r["quality"] for r in results.values())
    named = [r["reason"] for r in results.values() if r["quality"] == quality]
    more = f" (and {len(named) - 3} more)" if len(named) > 3 else ""
    return Verdict(quality, "; ".join(named[:3]) + more)


def occupancy(content: Content | None, detector: Detector) -> bh.Histogram | None:
    return content.histograms.get(f"{detector.name}/occupancy") if content else None


def _first_source(histogram: bh.Histogram) -> int:
    return int(histogram.axes[0].edges[0])  # its own axis: the map may have changed since


def _channels(histogram: bh.Histogram, chosen: np.ndarray, order: np.ndarray | None = None) -> str:
    """Up to SHOWN of the chosen (source, channel) bins, in ``order`` (flat indices of them)
    or the bins' own; a source all of whose channels are chosen is named once."""
    first, channels = _first_source(histogram), chosen.shape[1]
    whole = np.flatnonzero(chosen.all(axis=1))
    names = [f"source {first + s} (all {channels} channels)" for s in whole[:SHOWN]]
    rest = chosen.copy()
    rest[whole] = False
    flat = np.flatnonzero(rest) if order is None else order[rest.ravel()[order]]
    for index in flat[: SHOWN - len(names)]:
        source, channel = divmod(int(index), channels)
        names.append(f"source {first + source} channel {channel}")
    total = len(whole) + int(rest.sum())
    return ", ".join(names) + (", ..." if total > len(names) else "")


EXPECT_FROM = ("reference", "channel", "median")


class ChannelCheck(DetectorCheck):
    """A check of each channel's hits against what it is expected to have, by
    ``expect_from``: "reference", the detector's reference scaled to the hits judged (where
    it has one, else as "channel"); "channel", the channel's median over the detector's
    sources (a profile shared by its boards: with 3 sources or more, else as "median");
    "median", the detector's median channel. Where the median is 0 (a sparse detector), the
    detector's mean."""

    expect_from = "reference"
    min_reference_hits = 10.0
    _choices = {**DetectorCheck._choices, "expect_from": EXPECT_FROM}

    def judge(self, memory: dict, detector: Detector, judged: Content,
              content: ContentSeen) -> Judged:  # fmt: skip
        """Null while the detector has fewer than ``min_entries`` hits; else its occupancy
        against each channel's expected hits (``judge_channels``)."""
        histogram = occupancy(judged, detector)
        total = float(histogram.view().sum()) if histogram is not None else 0.0
        if histogram is None or total < self.min_entries:
            return self.too_few(detector, total)
        basis, expected = self.expected(histogram, detector, content)
        return self.judge_channels(detector, histogram, basis, expected)

    def judge_channels(self, detector: Detector, histogram: bh.Histogram, basis: str,
                       expected: np.ndarray) -> Judged:  # fmt: skip
        raise NotImplementedError

    def expected(self, histogram: bh.Histogram, detector: Detector,
                 content: ContentSeen) -> tuple[str, np.ndarray]:  # fmt: skip
        """Each channel's expected hits. The reference speaks for a channel only where it
        knows it: ``min_reference_hits`` there, or as many expected there by the reference's
        own profile (so its 0 is a masked channel, not a channel a short reference missed)."""
        counts = histogram.view()
        basis, own = self.own_expectation(counts)
        reference = occupancy(content.references.get(detector.name), detector)
        if (self.expect_from != "reference" or reference is None
                or reference.axes != histogram.axes or reference.view().sum() <= 0):  # fmt: skip
            return basis, own
        known = reference.view()
        sure = np.maximum(known, self.own_expectation(known)[1]) >= self.min_reference_hits
        if not sure.any():
            return basis, own
        scaled = known * (counts.sum() / known.sum())
        return "reference", np.where(sure, scaled, own)

    def own_expectation(self, counts: np.ndarray) -> tuple[str, np.ndarray]:
        """Expected hits from the occupancy itself: the channel's median over sources (with 3
        or more, unless ``expect_from="median"``), else the median channel; the mean where 0."""
        mean = float(counts.mean())
        if self.expect_from != "median" and counts.shape[0] >= 3:
            per_channel = np.median(counts, axis=0)
            return "channel's median over sources", np.broadcast_to(
                np.where(per_channel > 0, per_channel, mean), counts.shape)  # fmt: skip
        return "median channel", np.full(counts.shape, float(np.median(counts)) or mean)


class DeadChannels(ChannelCheck):
    """Channels without a hit where more than ``min_expected`` were expected."""

    min_expected = 20.0  # P(0 hits | 20 expected) = 2e-9: no dead channel by chance

    def judge_channels(self, detector: Detector, histogram: bh.Histogram, basis: str,
                       expected: np.ndarray) -> Judged:  # fmt: skip
        if expected.max() <= self.min_expected:
            return self.too_few(detector, expected.max(), f"hits expected (by the {basis}) "
                                                          f"of the busiest channel")  # fmt: skip
        dead = (histogram.view() == 0) & (expected > self.min_expected)
        if dead.any():
            return self.says(f"{detector.name}: {int(dead.sum())} dead channels where the "
                             f"{basis} expects over {self.min_expected:g} hits: "
                             f"{_channels(histogram, dead)}"), {}  # fmt: skip
        return good(f"{detector.name}: no dead channel (by the {basis})"), {}


class HotChannels(ChannelCheck):
    """Channels over ``factor`` times their expected hits whose Poisson tail is beyond
    ``min_sigma`` (one-sided): 6 sigma keeps a detector of 10^5 channels from finding a hot
    one by chance."""

    quality = Quality.BAD
    factor = 5.0
    min_sigma = 6.0

    def judge_channels(self, detector: Detector, histogram: bh.Histogram, basis: str,
                       expected: np.ndarray) -> Judged:  # fmt: skip
        flat, mean = histogram.view().ravel(), expected.ravel()
        over = np.flatnonzero(flat > self.factor * mean)
        tail = _poisson_tail(flat[over], mean[over])
        hot = tail < 0.5 * math.erfc(self.min_sigma / math.sqrt(2))
        hot_bins = over[hot][np.lexsort((-flat[over][hot], tail[hot]))]  # the least likely first
        if len(hot_bins):
            chosen = np.zeros(histogram.view().shape, dtype=bool)
            chosen.ravel()[hot_bins] = True
            worst_one = int(hot_bins[0])
            return self.says(f"{detector.name}: {len(hot_bins)} hot channels over "
                             f"{self.factor:g} x their expected hits (by the {basis}; the worst "
                             f"{flat[worst_one]:.0f}, {mean[worst_one]:.3g} expected): "
                             f"{_channels(histogram, chosen, order=hot_bins)}"), {}  # fmt: skip
        return good(f"{detector.name}: no hot channel (by the {basis})"), {}


EXACT_UP_TO = 200  # counts whose Poisson tail is summed exactly; above, the likelihood ratio's
TAIL_ROWS = 4096  # candidates summed at a time (a row of EXACT_UP_TO + 50 terms each)


def _poisson_tail(observed: np.ndarray, means: np.ndarray) -> np.ndarray:
    """P(X >= k) for each observed k and its Poisson mean: for small counts the pmf summed from
    the top down (exact in the far tail, where approximations fail); for large ones the normal
    tail of the likelihood ratio's signed root, sqrt(2 (k ln(k/mu) - (k - mu))), good there."""
    k = np.rint(observed).astype(np.int64)
    mu = np.maximum(np.asarray(means, dtype=float), 1e-12)
    tail = np.empty(len(k))
    large = k > EXACT_UP_TO
    kl, ml = k[large] - 0.5, mu[large]
    z = np.sign(kl - ml) * np.sqrt(np.maximum(2 * (kl * np.log(kl / ml) - (kl - ml)), 0.0))
    tail[large] = 0.5 * np.vectorize(math.erfc, otypes=[float])(z / math.sqrt(2))
    i = np.arange(EXACT_UP_TO + 51)
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(i[1:]))))
    small = np.flatnonzero(~large)
    for start in range(0, len(small), TAIL_ROWS):
        rows = small[start : start + TAIL_ROWS]
        m = mu[rows][:, None]
        pmf = np.exp(i * np.log(m) - m - log_factorial)  # a row per count
        tails = np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]
        tail[rows] = tails[np.arange(len(rows)), k[rows]]
    return tail


class MissingSources(DetectorCheck):
    """Readout sources of the map that sent nothing for ``window`` judged cycles in a row. A
    cycle counts only with ``min_entries`` TFs decoded (fewer cannot tell a silent source)."""

    over = "cycle"
    min_entries = 10  # TFs decoded in the cycle
    window = 3

    def judge(self, memory: dict, detector: Detector, judged: Content,
              content: ContentSeen) -> Judged:  # fmt: skip
        if judged.tfs_decoded < self.min_entries:  # nothing learnt: the last result stands
            kept = memory.get("detectors", {}).get(detector.name)
            if kept:
                return Verdict(Quality(kept["quality"]), kept["reason"]), {}
            return self.too_few(detector, judged.tfs_decoded, "TFs decoded")
        histogram = occupancy(judged, detector)
        sending = histogram.view().sum(axis=1) > 0 if histogram is not None else None
        silent = memory.setdefault("silent", {})
        before = np.array(silent.get(detector.name, []), dtype=int)
        if sending is None or len(before) != len(sending):
            before = np.zeros(detector.n_sources if sending is None else len(sending), dtype=int)
            sending = np.zeros(len(before), dtype=bool) if sending is None else sending
        cycles = np.where(sending, 0, before + 1)
        silent[detector.name] = cycles.tolist()
        seen = memory.setdefault("cycles", {})
        seen[detector.name] = seen.get(detector.name, 0) + 1
        if seen[detector.name] < self.window:
            return Verdict(
                Quality.NULL,
                f"{detector.name}: {seen[detector.name]} cycles seen, "
                f"too few to judge (window {self.window})",
            ), {}
        missing = np.flatnonzero(cycles >= self.window)
        first = detector.first_source if histogram is None else _first_source(histogram)
        if len(missing):
            shown = ", ".join(str(first + s) for s in missing[:SHOWN])
            more = ", ..." if len(missing) > SHOWN else ""
            return self.says(
                f"{detector.name}: {len(missing)} of {len(cycles)} sources sent "
                f"nothing for {self.window} cycles: {shown}{more}"
            ), {}
        return good(f"{detector.name}: all {len(cycles)} sources sending"), {}


class CorruptTFs(DetectorCheck):
    """The share of TFs corrupt in the detector's data (its own blocks, or a TF header, which
    loses every detector's) over ``max_fraction``."""

    min_entries = 100  # TFs
    max_fraction = 0.01

    def judge(self, memory: dict, detector: Detector, judged: Content,
              content: ContentSeen) -> Judged:  # fmt: skip
        tfs = judged.tfs_decoded + judged.corrupt_tfs
        if tfs < self.min_entries:
            return self.too_few(detector, tfs, "TFs")
        corrupt = judged.corrupt.get(detector.name, 0) + judged.corrupt.get("", 0)
        share = f"{detector.name}: {corrupt} of {tfs} TFs corrupt ({corrupt / tfs:.1%})"
        if corrupt / tfs > self.max_fraction:
            return self.says(f"{share}; the first: {judged.corrupt_first_reason}"), {}
        return good(share), {}


class ReferenceComparison(DetectorCheck):
    """Each of the detector's histograms against its reference's, shapes only (normalised):
    the p-value of a chi-square test of two histograms (ROOT's Chi2Test "UU NORM"), or, for 1D
    histograms with ``method="kolmogorov"``, of a Kolmogorov test; medium below
    ``medium_below``, bad below ``bad_below``, null with fewer than ``min_entries`` on either
    side (as Belle II's DQMHistComparitor). A detector without a reference: null."""

    over = "run"
    min_entries = 100
    method = "chi2"  # or "kolmogorov"
    medium_below = 1e-3
    bad_below = 1e-6

    def judge(self, memory: dict, detector: Detector, judged: Content,
              content: ContentSeen) -> Judged:  # fmt: skip
        reference = content.references.get(detector.name)
        if reference is None:
            return Verdict(Quality.NULL, f"{detector.name}: no reference"), {}
        compared = {name: self.compare(name, judged.histograms.get(name), histogram)
                    for name, histogram in sorted(reference.histograms.items())}  # fmt: skip
        verdict = overall(compared) or Verdict(Quality.NULL, f"{detector.name}: no histograms")
        return verdict, {"histograms": compared}

    def compare(self, name: str, mine: bh.Histogram | None, reference: bh.Histogram) -> dict:
        if mine is None or mine.axes != reference.axes:
            return {
                "quality": Quality.NULL.value,
                "reason": f"{name}: not comparable (no such histogram, or other axes)",
            }
        a, b = (np.asarray(h.values(flow=True), dtype=float) for h in (mine, reference))
        entries = min(a.sum(), b.sum())
        if entries < self.min_entries:
            return {
                "quality": Quality.NULL.value,
                "reason": f"{name}: {entries:.0f} entries, too few to compare",
            }
        if self.method == "kolmogorov" and a.ndim == 1:
            p, statistic = _kolmogorov(a, b)
            test = f"Kolmogorov distance {statistic:.3f}"
        else:
            p, statistic = _chi2(a.ravel(), b.ravel())
            test = f"chi2/ndf {statistic:.2f}"
        quality = (Quality.BAD if p < self.bad_below else
                   Quality.MEDIUM if p < self.medium_below else Quality.GOOD)  # fmt: skip
        return {"quality": quality.value, "reason": f"{name}: {test}, p {p:.2g}", "p": p}


def _chi2(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two histograms' shapes compared (unweighted, normalised): p-value and chi2/ndf."""
    n, m = a.sum(), b.sum()
    used = (a + b) > 0
    ndf = int(used.sum()) - 1
    if ndf < 1:
        return 1.0, 0.0
    chi2 = float((((m * a - n * b)[used]) ** 2 / (a + b)[used]).sum() / (n * m))
    return _chi2_p(chi2, ndf), chi2 / ndf


def _chi2_p(chi2: float, ndf: int) -> float:
    """The chi-square distribution's upper tail: exact for 1 and 2 degrees of freedom, else
    Wilson-Hilferty's normal approximation (within a few per cent, enough for thresholds)."""
    if ndf == 1:
        return math.erfc(math.sqrt(chi2 / 2))
    if ndf == 2:
        return math.exp(-chi2 / 2)
    scale = 2 / (9 * ndf)
    z = ((chi2 / ndf) ** (1 / 3) - (1 - scale)) / math.sqrt(scale)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _kolmogorov(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The Kolmogorov test of two 1D histograms: p-value and the largest distance between
    their normalised cumulative sums."""
    n, m = a.sum(), b.sum()
    distance = float(np.abs(np.cumsum(a) / n - np.cumsum(b) / m).max())
    z = distance * math.sqrt(n * m / (n + m))
    if z < 0.2:
        return 1.0, distance
    k = np.arange(1, 101)
    p = float(2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k**2 * z**2)))
    return min(max(p, 0.0), 1.0), distance


def content_quality(run: Run) -> dict[str, dict[str, dict[str, Any]]]:
    """The content checks' latest results per detector: {detector: {check: {quality, reason,
    histograms?}}}, for a page that colours each panel."""
    names = [c.name for c in configured_checks() if isinstance(c, DetectorCheck)]
    found: dict[str, dict[str, dict[str, Any]]] = {}
    states = CheckState.objects.filter(run=run, check_name__in=names).order_by("check_name")
    for check_name, memory in states.values_list("check_name", "memory"):
        for detector, result in (memory or {}).get("detectors", {}).items():
            found.setdefault(detector, {})[check_name] = result
    return found
