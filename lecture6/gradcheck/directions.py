"""Autodiff against finite differences along random directions, and group testing to name an entry.

Used by the fast check (:mod:`lecture6.gradcheck.fast`, stages 2 and 3 of its docstring). A direction
``u`` has a random sign on every input; input ``j`` moves by ``t h_j u_j`` with ``h_j = eps^(1/3) max(1,
|x_j|)`` the full check's step, so that a wrong entry ``j`` of autodiff shows along ``u`` at full size,
``max(1, |x_j|)`` times its error.
"""

from __future__ import annotations

import dataclasses
import zlib

import jax
import numpy as np

from lecture6.gradcheck.settings import DIRECTION_SHRINKS, FD_NOISE_ULPS, base_steps


@dataclasses.dataclass
class Node:
    """The direction ``u`` restricted to inputs ``lo:hi``, and what its finite differences say per step level."""

    u: np.ndarray  # (n_in,) signs
    lo: int
    hi: int
    disc: dict = dataclasses.field(default_factory=dict)  # level -> (n_out,) (central difference - J u) / step
    noise: dict = dataclasses.field(default_factory=dict)  # level -> (n_out,) rounding bound of a central difference
    ad: dict = dataclasses.field(default_factory=dict)  # level -> (n_out,) |J u|
    gap: dict = dataclasses.field(default_factory=dict)  # level -> (n_out,) right minus left one-sided difference
    clean: set = dataclasses.field(default_factory=set)  # levels l known kink-free over steps l and l + 1


class Directions:
    """Autodiff against finite differences along directions, with group testing (stages 2 and 3)."""

    def __init__(self, run, J: np.ndarray, f0: np.ndarray, limit: np.ndarray, fd_rtol: float):
        self.run, self.J, self.f0, self.limit, self.fd_rtol = run, J, f0, limit, fd_rtol
        v = run.v_fd
        self.t = np.asarray(DIRECTION_SHRINKS[v.dtype])
        self.r = self.t[0] / self.t[1]
        self.h = base_steps(v)  # input j moves by t h_j = t eps^(1/3) max(1, |x_j|): t eps^(1/3) along max(1, |x|) u
        self.eps = float(np.finfo(v.dtype).eps)
        self.tau = self.eps ** (1.0 / 3.0) * self.t
        self.known: dict[int, np.ndarray] = {}  # input j -> (n_out,) FD minus autodiff, where examined

    def explained(self, node: Node) -> np.ndarray:
        """The part of the node's (central difference - J u) that the inputs already examined account for."""
        out = np.zeros(self.J.shape[0])
        for j, err in self.known.items():
            if node.lo <= j < node.hi:
                out += err * node.u[j] * self.h[j] / self.tau[0]
        return out

    def evaluate(self, requests: list[tuple[Node, int]]) -> None:
        """Evaluate each node's direction (its signs on its inputs) at the step levels requested."""
        points, deltas = [], []
        v = self.run.v_fd
        for node, level in requests:
            step = np.zeros_like(self.h)
            step[node.lo:node.hi] = self.t[level] * self.h[node.lo:node.hi] * node.u[node.lo:node.hi]
            plus, minus = v + step.astype(v.dtype), v - step.astype(v.dtype)
            points += [plus, minus]
            deltas.append(plus.astype(np.float64) - minus.astype(np.float64))  # the step actually taken, both sides
        values = self.run.f_at(points)
        for k, (node, level) in enumerate(requests):
            fp, fm, t = values[2 * k], values[2 * k + 1], self.tau[level]
            ad = self.J @ deltas[k]
            node.disc[level] = ((fp - fm) - ad) / (2 * t)
            node.ad[level] = np.abs(ad) / (2 * t)
            node.gap[level] = (fp - 2 * self.f0 + fm) / t
            size = np.maximum(np.abs(self.f0), np.maximum(np.abs(fp), np.abs(fm)))
            node.noise[level] = FD_NOISE_ULPS * self.eps * size / t

    def kink_free(self, node: Node, level: int) -> bool:
        """Whether no kink lies within the longer of steps ``level``, ``level + 1``: where f is smooth the
        one-sided differences differ by about ``t f''``, ten times less at the shorter step; across a kink by
        the change of slope, at both steps alike."""
        if level in node.clean:
            return True
        if level not in node.gap or level + 1 not in node.gap:
            return False
        g, g_next = node.gap[level], node.gap[level + 1]
        noise = 4 * (node.noise[level] + self.r * node.noise[level + 1])  # f+ - 2 f0 + f-: four roundings
        return bool(np.all(np.abs(g - self.r * g_next) <= noise + 1e-2 * np.abs(g)))

    def verdict(self, node: Node) -> tuple[float, np.ndarray | None, int]:
        """``(score, bar, level)`` at the pair of neighbouring steps, kink-free and within the limit, whose central
        differences confirm each other best (their difference, with the rounding bound, is the error bar ``bar``
        of the longer one, ``level``); ``score`` is autodiff's error there over its tolerance (> 1: an alarm).
        ``bar`` is None when no pair evaluated so far is kink-free and within the limit."""
        r2 = self.r ** 2  # the truncation errors of neighbours differ r2-fold
        best = None
        for level in sorted(node.disc):
            if level + 1 not in node.disc or not self.kink_free(node, level):
                continue
            diff = np.abs(node.disc[level] - node.disc[level + 1])
            bar = (diff + node.noise[level] + node.noise[level + 1]) * r2 / (r2 - 1) + node.noise[level]
            if np.all(bar <= self.limit) and (best is None or np.max(bar / self.limit) < np.max(best[1] / self.limit)):
                best = (level, bar)
        if best is None:
            return 0.0, None, -1
        level, bar = best
        tol = np.maximum(bar + self.fd_rtol * node.ad[level], np.finfo(float).tiny)
        return float(np.max(np.abs(node.disc[level] - self.explained(node)) / tol)), bar, level

    def kink_at_x(self, node: Node) -> bool:
        """Whether the one-sided differences differ alike at the two shortest steps evaluated, well above
        rounding: a kink at x itself (or closer than the shortest step) along this direction."""
        a, b = sorted(node.gap)[-2:]
        ga, gb = np.abs(node.gap[a]), np.abs(node.gap[b])
        return bool(np.any((gb > 8 * node.noise[b]) & (gb > 0.5 * ga)))

    def settle(self, nodes: list[Node]) -> list[tuple[float, np.ndarray | None, int]]:
        """Evaluate shorter steps for nodes with no kink-free confirming pair yet, or only one whose error bar
        is over a tenth of the limit, while there are shorter steps; then judge them all."""
        while True:
            verdicts = [self.verdict(n) for n in nodes]
            more = []
            for n, (_, bar, _) in zip(nodes, verdicts):
                nxt = max(n.disc) + 1
                if (bar is None or np.any(bar > 0.1 * self.limit)) and nxt < len(self.t):
                    more += [(n, nxt)] + ([(n, nxt - 1)] if nxt - 1 not in n.gap else [])
            if not more:
                return verdicts
            self.evaluate(more)

    def locate(self, root: Node, level: int, leaf, budget: int) -> str | None:
        """Halve the disagreeing direction down to single inputs, each judged by ``leaf(j)``, depth first.

        ``leaf(j)`` returns ``"mismatch"``, ``"kink"`` or ``None`` (the entry is fine); the search stops at
        the first mismatch or kink and returns it, or returns None when no entry confirmed the alarm.
        """
        stack = [(root, level)]
        while stack and budget > 0:
            node, level = stack.pop()
            if node.hi - node.lo == 1:
                found = leaf(node.lo)
                if found:
                    return found
                continue
            mid = (node.lo + node.hi) // 2
            first, second = Node(node.u, node.lo, mid), Node(node.u, mid, node.hi)
            self.evaluate([(first, level), (first, level + 1)])
            for lv in (level, level + 1):  # the other half: the parent's difference minus this one's
                second.disc[lv] = node.disc[lv] - first.disc[lv]
                second.noise[lv] = node.noise[lv] + first.noise[lv]
                second.ad[lv] = np.abs(node.ad[lv] - first.ad[lv])
            if self.kink_free(node, level) and self.kink_free(first, level):
                second.clean.add(level)
            budget -= 1
            verdicts = self.settle([first, second])
            alarmed = [(s, n, lv) for n, (s, bar, lv) in zip((first, second), verdicts) if s > 1]
            unsure = [(0.0, n, max(n.disc) - 1) for n, (_, bar, _) in zip((first, second), verdicts) if bar is None]
            stack += [(n, lv) for _, n, lv in sorted(alarmed or unsure, key=lambda p: p[0])]  # the worst on top
        return None


def draw(rng: np.random.Generator, n: int, excluded: set[int]) -> np.ndarray:
    """Random signs on every input but the excluded ones."""
    u = rng.choice(np.array([-1.0, 1.0]), size=n)
    u[list(excluded)] = 0.0
    return u


def key_seed(key, v: np.ndarray) -> int:
    """A seed for the directions: from ``key`` (a ``jax.random.key``), else from the bytes of x (reproducible)."""
    if key is None:
        return zlib.crc32(np.ascontiguousarray(v).tobytes())
    return zlib.crc32(np.asarray(jax.random.key_data(key)).tobytes())


def locate_modes(run, J: np.ndarray, u: np.ndarray, scale: float, rtol: float, atol: float,
                 fwd: np.ndarray) -> list[tuple[int, int]]:
    """Halve a direction along which jacfwd and jacrev disagree down to one input; its entries that disagree."""
    lo, hi = 0, u.size

    def score(w, got):
        return float(np.max(np.abs(got - J @ w) / (rtol * (np.abs(J) @ np.abs(w)) + atol * scale)))

    while hi - lo > 1:
        mid = (lo + hi) // 2
        at = np.arange(u.size)
        halves = [np.where((at >= a) & (at < b), u, 0.0) for a, b in ((lo, mid), (mid, hi))]
        first, second = (score(w, run.jvp(w)) for w in halves)
        lo, hi = (lo, mid) if first >= second else (mid, hi)
    e = np.zeros(u.size)
    e[lo] = 1.0
    fwd[:, lo] = run.jvp(e)
    bad = ~(np.abs(fwd[:, lo] - J[:, lo]) <= atol * scale + rtol * np.abs(J[:, lo]))
    return [(int(r), lo) for r in np.nonzero(bad)[0]]
