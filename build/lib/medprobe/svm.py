"""A fast solver of LinearSVC's objective, for every class and fold at once, in torch (on the GPU when there is one).

scikit-learn's LinearSVC(penalty="l2", loss="squared_hinge", C) with its default intercept (liblinear appends a
constant feature 1, whose weight is regularised like the others) minimises, one-vs-rest for each class c:

    f(w) = 1/2 ||w||^2 + C sum_i max(0, 1 - y_ic w.x_i)^2,   x_i = [features_i, 1],  y_ic = +1 if label_i = c else -1

(two classes: one problem, label 1 against label 0). This module minimises the same f by Newton's method with
preconditioned conjugate gradients (the Hessian is I + 2C X_A^T X_A over the margin violators A; the preconditioner
I + 2C X^T X is factored once per fold), all classes of a fold in one matrix product, and a backtracking line search.
It stops where liblinear's primal solver stops: ||grad f(w)|| <= tol ||grad f(0)|| for every class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TorchLinearSVC:
    """The fitted weights (features + 1, K) of one fold, in the standardized feature space."""

    weights: torch.Tensor
    n_classes: int
    n_iter: int
    converged: bool
    grad_ratio: float = 0.0     # the largest ||grad f(w)|| / ||grad f(0)|| over the classes when it stopped
    stopped: str = "converged"  # converged | max_iter | stalled (the line search found no decrease)

    def decision_function(self, features: torch.Tensor) -> torch.Tensor:
        scores = features @ self.weights[:-1] + self.weights[-1]
        return scores[:, 0] if self.n_classes == 2 else scores

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        scores = self.decision_function(features)
        return (scores > 0).long() if self.n_classes == 2 else scores.argmax(dim=1)


def fit_linear_svc(features: torch.Tensor, labels: torch.Tensor, n_classes: int, C: float, *, tol: float = 1e-4,
                   max_iter: int = 1000, max_cg: int = 100, progress=None,
                   progress_seconds: float = 10.0) -> TorchLinearSVC:
    """Minimise LinearSVC's objective (see the module docstring) on standardized `features` (n, d).

    Bounded: at most `max_iter` Newton steps of at most `max_cg` CG products each, and it stops early when the line
    search finds no decrease any more (`stalled`: more iterations cannot help). `progress(iteration, grad_ratio,
    seconds)` is called every `progress_seconds`."""
    import time

    started = last_report = time.perf_counter()
    device, dtype = features.device, features.dtype
    n, d = features.shape
    x = torch.cat([features, torch.ones(n, 1, device=device, dtype=dtype)], dim=1)
    k = 1 if n_classes == 2 else n_classes
    y = -torch.ones(n, k, device=device, dtype=dtype)
    if n_classes == 2:
        y[labels == 1, 0] = 1.0
    else:
        y[torch.arange(n, device=device), labels] = 1.0
    gram = x.T.double() @ x.double()
    precond = torch.linalg.cholesky(torch.eye(d + 1, device=device, dtype=torch.float64) + 2.0 * C * gram)

    def apply_precond(r: torch.Tensor) -> torch.Tensor:
        return torch.cholesky_solve(r.double(), precond).to(dtype)

    def objective(w: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
        hinge = torch.clamp(1.0 - y * margins, min=0.0)
        return 0.5 * (w * w).sum(0).double() + C * (hinge * hinge).sum(0).double()

    w = torch.zeros(d + 1, k, device=device, dtype=dtype)
    margins = torch.zeros(n, k, device=device, dtype=dtype)
    grad0 = (-2.0 * C * (x.T @ y)).norm(dim=0)
    converged = False
    stopped = "max_iter"
    iteration = 0
    ratio = 1.0
    for iteration in range(1, max_iter + 1):
        active = ((y * margins) < 1.0).to(dtype)
        grad = w + 2.0 * C * (x.T @ (active * (margins - y)))
        grad_norm = grad.norm(dim=0)
        ratio = float((grad_norm / grad0.clamp_min(1e-30)).max())
        todo = grad_norm > tol * grad0
        if not bool(todo.any()):
            converged, stopped = True, "converged"
            iteration -= 1
            break
        now = time.perf_counter()
        if progress is not None and now - last_report >= progress_seconds:
            progress(iteration, ratio, now - started)
            last_report = now
        # inexact Newton step: preconditioned CG on H step = -grad, to 10% of the gradient's norm
        step = torch.zeros_like(w)
        residual = -grad
        z = apply_precond(residual)
        direction = z.clone()
        rz = (residual * z).sum(0)
        for _ in range(max_cg):
            h_dir = direction + 2.0 * C * (x.T @ (active * (x @ direction)))
            alpha = rz / (direction * h_dir).sum(0).clamp_min(1e-30)
            step += alpha * direction
            residual -= alpha * h_dir
            if bool((residual.norm(dim=0) <= 0.1 * grad_norm).all()):
                break
            z = apply_precond(residual)
            rz_next = (residual * z).sum(0)
            direction = z + (rz_next / rz.clamp_min(1e-30)) * direction
            rz = rz_next
        step[:, ~todo] = 0.0
        # backtracking (Armijo) line search per class; margins move along x @ step, no further products needed
        x_step = x @ step
        f0 = objective(w, margins)
        slope = (grad * step).sum(0).double()
        t = torch.ones(k, device=device, dtype=dtype)
        ok = torch.zeros(k, device=device, dtype=torch.bool)
        for _ in range(30):
            ok = objective(w + t * step, margins + t * x_step) <= f0 + 1e-4 * t.double() * slope
            if bool(ok.all()):
                break
            t = torch.where(ok, t, 0.5 * t)
        if not bool(ok[todo].any()):   # no class still to do found a decrease: the iterations would go on forever
            stopped = "stalled"
            break
        t = torch.where(ok, t, torch.zeros_like(t))
        w = w + t * step
        margins = margins + t * x_step
    return TorchLinearSVC(weights=w, n_classes=n_classes, n_iter=iteration, converged=converged, grad_ratio=ratio,
                          stopped=stopped)


def standardize(train: torch.Tensor, *others: torch.Tensor, enabled: bool = True):
    """Scale by the training rows' mean and std (scikit-learn's StandardScaler: population std, zero std -> 1)."""
    if not enabled:
        return (train, *others)
    mean = train.mean(dim=0)
    std = train.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple((t - mean) / std for t in (train, *others))


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def as_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=device)
