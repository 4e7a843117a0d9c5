"""MI bounds: float64 references, closed forms, known caps, the true critic, gradients, devices."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ssljax import objectives, parallel
from ssljax.objectives import mutual_information as mi
from tests.tolerances import assert_close, f32_sum_tol

# ---------------------------------------------------------------------------------------------
# Independent float64 references: explicit loops over the score matrix.


def np_logmeanexp(values):
    values = np.asarray(values, np.float64)
    top = values.max()
    return top + math.log(np.mean(np.exp(values - top)))


def ref_bounds(s, log_baseline, alpha, clip):
    s = np.asarray(s, np.float64)
    k = s.shape[0]
    b = np.broadcast_to(np.asarray(log_baseline, np.float64), (k,))
    diag = np.array([s[i, i] for i in range(k)])
    off = [(i, j) for i in range(k) for j in range(k) if i != j]
    out = {}
    out["infonce"] = math.log(k) + np.mean(
        [s[i, i] - np_logmeanexp(s[i]) - math.log(k) for i in range(k)]
    )
    out["tuba"] = 1 + np.mean(diag - b) - np.mean([math.exp(s[i, j] - b[i]) for i, j in off])
    out["nwj"] = np.mean(diag) - math.exp(-1) * np.mean([math.exp(s[i, j]) for i, j in off])
    out["dv"] = np.mean(diag) - np_logmeanexp([s[i, j] for i, j in off])
    out["js_value"] = 1 + np.mean(diag) - np.mean([math.exp(s[i, j]) for i, j in off])
    out["js_fgan"] = np.mean([-np.logaddexp(0, -s[i, i]) for i in range(k)]) - np.mean(
        [np.logaddexp(0, s[i, j]) for i, j in off]
    )
    clipped = np.clip(s, -clip, clip)
    out["smile"] = np.mean(diag) - np_logmeanexp([clipped[i, j] for i, j in off])

    def baseline(i, j):  # alpha * mean_{l != j} e^{s_il} + (1 - alpha) * a_i
        m = np.mean([math.exp(s[i, l]) for l in range(k) if l != j])
        return math.log(alpha * m + (1 - alpha) * math.exp(b[i]))

    joint = np.mean([s[i, i] - baseline(i, j) for i, j in off])
    marginal = np.mean([math.exp(s[i, j] - baseline(i, i)) for i, j in off])
    out["interpolated"] = 1 + joint - marginal
    return out


def test_bounds_match_float64_references():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(7, 7)) * 2 + 3 * np.eye(7)
    b = rng.normal(size=7) * 0.5
    s32 = jnp.asarray(s, jnp.float32)
    for alpha in (0.0, 0.3, 1.0):
        ref = ref_bounds(s, b, alpha, clip=1.5)
        assert float(mi.interpolated_bound(s32, jnp.asarray(b), alpha)) == pytest.approx(
            ref["interpolated"], abs=2e-5
        )
    ref = ref_bounds(s, b, 0.5, clip=1.5)
    ref0 = ref_bounds(s, 0.0, 0.5, clip=1.5)
    got = {
        "infonce": mi.infonce_bound(s32),
        "tuba": mi.tuba_bound(s32, jnp.asarray(b)),
        "nwj": mi.nwj_bound(s32),
        "dv": mi.dv_bound(s32),
        "js_value": mi.js_bound(s32),
        "js_fgan": mi.js_fgan_objective(s32),
        "smile": mi.smile_bound(s32, 1.5),
    }
    for key, value in got.items():
        want = ref0[key] if key != "tuba" else ref[key]
        assert float(value) == pytest.approx(want, abs=2e-5), key
    value, _ = mi.mine_bound(s32, mi.mine_init_state())
    assert float(value) == pytest.approx(ref0["dv"], abs=2e-5)


def test_interpolated_limits_and_exports():
    rng = np.random.default_rng(1)
    s = jnp.asarray(rng.normal(size=(9, 9)) * 3, jnp.float32)
    b = jnp.asarray(rng.normal(size=9), jnp.float32)
    # alpha = 0 is TUBA with the same baseline.
    np.testing.assert_allclose(mi.interpolated_bound(s, b, 0.0), mi.tuba_bound(s, b), atol=1e-5)
    for name in (
        "infonce_bound",
        "nwj_bound",
        "tuba_bound",
        "dv_bound",
        "js_bound",
        "interpolated_bound",
        "smile_bound",
        "mine_bound",
    ):
        assert getattr(objectives, name) is getattr(mi, name)


def test_infonce_never_exceeds_log_k():
    rng = np.random.default_rng(2)
    capped = jax.jit(
        jax.vmap(lambda s: jnp.stack([mi.infonce_bound(s), mi.interpolated_bound(s, 0.0, 1.0)]))
    )
    for k in (3, 64):
        s = rng.normal(size=(4, k, k)) * np.array([1.0, 30.0, 1e4, 1e4])[:, None, None]
        s[:2, np.arange(k), np.arange(k)] += 300.0  # joint pairs far above every negative
        values = np.asarray(capped(jnp.asarray(s, jnp.float32)))
        assert np.all(values[:, 0] <= math.log(k) + 1e-5)
        # The interpolated bound at alpha = 1 is capped at log(K - 1).
        assert np.all(values[:, 1] <= math.log(k - 1) + 1e-4)
        np.testing.assert_allclose(values[:2, 0], math.log(k), atol=1e-5)  # the cap is reached
    # With the true critic at 10 nats, far above log 64.
    rho = mi.rho_for_mi(10.0, 20)
    x, y = mi.sample_correlated_gaussian(jax.random.PRNGKey(0), 64, 20, rho)
    value = float(mi.infonce_bound(mi.gaussian_log_ratio(x, y, rho)))
    assert math.log(64) - 0.2 < value <= math.log(64) + 1e-5


def test_gaussian_mi_closed_form():
    # I = (log det Sx + log det Sy - log det S) / 2 for the joint covariance of (x, y).
    for rho, d in ((0.3, 1), (0.8, 3), (0.95, 20)):
        eye = np.eye(d)
        cov = np.block([[eye, rho * eye], [rho * eye, eye]])
        want = -0.5 * np.linalg.slogdet(cov)[1]
        assert float(mi.gaussian_mi(rho, d)) == pytest.approx(want, rel=1e-5)
        assert float(mi.rho_for_mi(want, d)) == pytest.approx(rho, rel=1e-5)
    assert float(mi.gaussian_mi(mi.rho_for_mi(6.0, 20), 20)) == pytest.approx(6.0, rel=1e-5)


def test_true_log_ratio_matches_densities():
    rng = np.random.default_rng(3)
    x, y, rho = rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), 0.6
    var = 1 - rho**2

    def log_normal(v, mean, variance):
        return -0.5 * math.log(2 * math.pi * variance) - 0.5 * (v - mean) ** 2 / variance

    want = np.array(
        [
            [
                sum(
                    log_normal(y[j, c], rho * x[i, c], var) - log_normal(y[j, c], 0, 1)
                    for c in range(2)
                )
                for j in range(4)
            ]
            for i in range(3)
        ]
    )
    got = mi.gaussian_log_ratio(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), rho)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def true_critic_estimates(mi_nats, *, cubic, batches=16, k=256, dim=20):
    rho = mi.rho_for_mi(mi_nats, dim)

    def one(key):
        x, y = mi.sample_correlated_gaussian(key, k, dim, rho, cubic=cubic)
        s = mi.gaussian_log_ratio(x, y, rho, cubic=cubic)
        return jnp.stack(
            [
                mi.infonce_bound(s),
                mi.nwj_bound(s + 1.0),
                mi.tuba_bound(s),
                mi.dv_bound(s),
                mi.js_bound(s),
                mi.interpolated_bound(s, 0.0, 0.5),
                mi.smile_bound(s, 5.0),
                mi.mine_bound(s, mi.mine_init_state())[0],
            ]
        )

    keys = jax.random.split(jax.random.PRNGKey(7), batches)
    return np.asarray(jax.jit(jax.vmap(one))(keys))  # [batches, bounds]


@pytest.fixture(scope="module")
def gaussian_and_cubic():
    return true_critic_estimates(2.0, cubic=False), true_critic_estimates(2.0, cubic=True)


def test_true_critic_estimates_are_near_the_truth(gaussian_and_cubic):
    # 2 nats << log 256: every bound's tight critic gives the true MI up to sampling noise
    # (InfoNCE's bias here is about E_p[r] / K ~ 0.03 nats).
    estimates, _ = gaussian_and_cubic
    np.testing.assert_allclose(estimates.mean(axis=0), 2.0, atol=0.1)


def test_cubic_transform_leaves_the_true_critic_estimate_unchanged(gaussian_and_cubic):
    gaussian, cubic = gaussian_and_cubic
    np.testing.assert_allclose(cubic, gaussian, atol=2e-3)


def test_js_and_smile_gradients_are_the_js_fgan_gradient():
    rng = np.random.default_rng(4)
    s = rng.normal(size=(5, 5)) * 2
    k = 5
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    want = -sigmoid(s) / (k * (k - 1))
    want[np.diag_indices(k)] = sigmoid(-np.diag(s)) / k
    s32 = jnp.asarray(s, jnp.float32)
    np.testing.assert_allclose(jax.grad(mi.js_bound)(s32), want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        jax.grad(lambda v: mi.smile_bound(v, 1.0))(s32), want, rtol=1e-5, atol=1e-7
    )


def test_mine_moving_average_and_gradient():
    rng = np.random.default_rng(5)
    k, m = 6, 0.9
    s1, s2 = rng.normal(size=(k, k)), rng.normal(size=(k, k)) + 1.0
    off = ~np.eye(k, dtype=bool)
    mean1, mean2 = np.exp(s1[off]).mean(), np.exp(s2[off]).mean()
    # Debiased EMA: after one batch the average is that batch's mean; after two it is the
    # weighted mean with weights m (1 - m) and (1 - m), divided by 1 - m^2.
    _, state = mi.mine_bound(jnp.asarray(s1, jnp.float32), mi.mine_init_state(), momentum=m)
    assert float(jnp.exp(state.log_mean)) == pytest.approx(mean1, rel=1e-5)

    def f(v):
        return mi.mine_bound(v, state, momentum=m)

    (value, state2), grad = jax.value_and_grad(f, has_aux=True)(jnp.asarray(s2, jnp.float32))
    avg = (m * (1 - m) * mean1 + (1 - m) * mean2) / (1 - m**2)
    assert float(jnp.exp(state2.log_mean)) == pytest.approx(avg, rel=1e-5)
    assert float(state2.weight) == pytest.approx(1 - m**2, rel=1e-6)
    assert float(value) == pytest.approx(np.mean(np.diag(s2)) - math.log(mean2), abs=1e-5)
    want = np.where(off, -np.exp(s2) / (k * (k - 1) * avg), 1.0 / k)
    np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-7)
    # Momentum 0 is the plain DV gradient.
    dv_grad = jax.grad(mi.dv_bound)(jnp.asarray(s2, jnp.float32))
    grad0 = jax.grad(lambda v: mi.mine_bound(v, state, momentum=0.0)[0])(
        jnp.asarray(s2, jnp.float32)
    )
    np.testing.assert_allclose(grad0, dv_grad, rtol=1e-5, atol=1e-7)


def test_rows_split_over_devices_give_the_global_bound():
    """Each device holds 8 rows of a 64 x 64 matrix; the device mean is the global value."""
    mesh = parallel.make_mesh()
    devices = len(jax.devices())
    rng = np.random.default_rng(6)
    s = jnp.asarray(rng.normal(size=(8 * devices, 8 * devices)) * 2, jnp.float32)
    b = jnp.asarray(rng.normal(size=8 * devices), jnp.float32)

    def all_bounds(scores, log_b, axis_name):
        mine, state = mi.mine_bound(scores, mi.mine_init_state(), axis_name=axis_name)
        return jnp.stack(
            [
                mi.infonce_bound(scores, axis_name=axis_name),
                mi.tuba_bound(scores, log_b, axis_name=axis_name),
                mi.nwj_bound(scores, axis_name=axis_name),
                mi.dv_bound(scores, axis_name=axis_name),
                mi.js_bound(scores, axis_name=axis_name),
                mi.js_fgan_objective(scores, axis_name=axis_name),
                mi.interpolated_bound(scores, log_b, 0.4, axis_name=axis_name),
                mi.smile_bound(scores, 2.0, axis_name=axis_name),
                mine,
                state.log_mean,
            ]
        )

    def per_device(scores, log_b):
        return jax.lax.pmean(all_bounds(scores, log_b, "batch"), "batch")

    split = jax.jit(
        jax.shard_map(
            per_device, mesh=mesh, in_specs=(P("batch"), P("batch")), out_specs=P(), check_vma=False
        )
    )
    # Reordered chain: log-sum-exp or mean over the 64 scores of a row, then over the 64 rows
    # (a device mean of 8 rows each); scores are up to ~8 (2 x normal), and the bounds are
    # differences of such terms, so all ten values are compared at that scale.
    scale = float(jnp.max(jnp.abs(s)))
    assert_close(
        split(s, b), all_bounds(s, b, None), rtol=0, atol=f32_sum_tol(2 * 64, magnitude=scale)
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: mi.dv_bound(jnp.zeros((3, 4))), r"scores must be square \[K, K\]"),
        (lambda: mi.infonce_bound(jnp.zeros((1, 1))), r"need at least 2 samples"),
        (lambda: mi.tuba_bound(jnp.zeros((4, 4)), jnp.zeros(3)), r"log_baseline must be"),
        (lambda: mi.interpolated_bound(jnp.zeros((4, 4)), 0.0, 1.5), r"alpha=1.5 must lie"),
        (
            lambda: mi.mine_bound(jnp.zeros((4, 4)), mi.mine_init_state(), momentum=1.0),
            r"momentum=1.0 must lie in \[0, 1\)",
        ),
    ],
)
def test_bad_input_fails_with_one_line(call, message):
    with pytest.raises(ValueError, match=message):
        call()
