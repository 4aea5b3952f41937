"""Composite-link count model of monthly cases received by military courts, per article.

Every published figure is a sum of the unknown monthly series over the months it covers, so the
model is fitted to those sums directly; smoothing first and regressing after biases the trend and
hides uncertainty (shared/research/methods.md).

Mean, for article a in month t (months counted from the first modelled month):

    log mu[a,t] = b0[a] + b1[a]*(t - T0) + b2[a]*[t >= T0] + sum_k g[a,k]*(t - knot_k)+ + log(days_t)

T0 is the mobilisation break; the knots after it let the rise phase in and slow down, with a ridge
penalty on the slope changes whose strength is chosen by the Laplace-approximate marginal
likelihood. Articles share T0 and the knots. Art. 337 (many figures) sets the shape; the small
series are regularised towards it: the slope changes of Art. 338 and 332 are g[337,k] + d[a,k]
with d penalised, and their pre-break slope is shrunk towards Art. 337's (they have no pre-break
figure but a 2022 total). All-article figures constrain the sum of the three article series, not
a fourth free series. Counting base: a total "since mobilisation" (from 21 Sep 2022) counts only
the share of each month's cases that its base includes (spec.MOBILISATION_BASE_START).

The modules follow the model's own sections: spec (choices, priors, parameter layout),
observations (figures to arrays, design), likelihood (written once for numpy and JAX), derivatives
(its exact gradient and Hessian, compiled), fit (trust region and Newton steps on them, the
penalty by marginal likelihood), simulate (draws and prediction),
tables (output tables); requests is the separate small model of help requests.
"""
