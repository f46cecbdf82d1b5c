# Recompute CARTtrack's headline survival figures from an exported analysis dataset, with R's
# `survival` package only, independently of the Python code (analytics/report.py).
#
#   Rscript scripts/reproduce_headline.R FILE.csv [--origin=cr] [--censor-at-hsct] [--landmark=45]
#
# Prints one "key,value" line per figure; the keys are the paths of the same numbers in
# headline_report()'s JSON (tests/analytics/test_survival_vs_r.py compares them).
# Choices, identical to the Python side:
#   * KM: survfit() defaults (Greenwood variance, conf.type = "log"); medians and their
#     Brookmeyer-Crowley limits from quantile.survfit().
#   * Symmetric median CI: median +/- 1.96 * SE (exactly 1.96, CLINICAL.md section 5),
#     SE = Greenwood SE(S(t50)) / f, Collett section 2.4.
#   * Log-rank: survdiff(rho = 0). Cox: coxph(ties = "efron"), lifelines' tie method; Wald CI/p.
#   * Landmark: CR patients with RFS time > landmark and a known early_regen; time from landmark.
#   * Time-varying Cox: follow-up split at regen_day when early_regen = 1 and regen_day < time.
#   * Cumulative incidence: survfit(Surv(time, factor(cir_event))) (Aalen-Johansen).
suppressPackageStartupMessages(library(survival))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: Rscript reproduce_headline.R FILE.csv [--origin=cr] ...")
origin <- if ("--origin=cr" %in% args) "cr" else "infusion"
censor_at_hsct <- "--censor-at-hsct" %in% args
landmark_arg <- grep("^--landmark=", args, value = TRUE)
landmark <- if (length(landmark_arg)) as.numeric(sub("--landmark=", "", landmark_arg)) else 45

x <- read.csv(args[1], stringsAsFactors = FALSE, na.strings = c("", "NA"),
              colClasses = c(study_id = "character", sex = "character"))
z <- qnorm(0.975)
out <- function(key, value) {
  cat(key, ",", if (is.na(value)) "NA" else sprintf("%.15g", value), "\n", sep = "")
}

# ---- CR rate (Clopper-Pearson exact, binom.test) ----
# Over patients with a response assessment; best response NE (not yet assessed or not
# evaluable) is counted apart, never as a failure (CLINICAL.md section 5).
assessed <- x[x$best_response != "NE", ]
n_cr <- sum(assessed$cr == 1)
ci <- binom.test(n_cr, nrow(assessed))$conf.int
out("cr_rate.proportion", n_cr / nrow(assessed))
out("cr_rate.n_not_assessed", nrow(x) - nrow(assessed))
out("cr_rate.lower", ci[1])
out("cr_rate.upper", ci[2])

# ---- endpoints of CR patients ----
d <- x[x$cr == 1, ]
rfs_endpoint <- function(d, origin) {
  time <- if (origin == "cr") d$rfs_from_cr_days else d$rfs_days
  origin_day <- d$rfs_days - time
  event <- d$rfs_event
  cir <- d$cir_event
  if (censor_at_hsct) {
    before <- !is.na(d$hsct_day) & d$hsct_day < d$rfs_days
    time[before] <- d$hsct_day[before] - origin_day[before]
    event[before] <- 0
    cir[before] <- 0
  }
  data.frame(study_id = d$study_id, time = pmax(time, 0), event = event, cir = cir,
             early_regen = d$early_regen, regen_day = d$regen_day,
             preemptive_category = d$preemptive_category,
             mrd_positive = d$mrd_positive, car_loss = d$car_loss)
}
rfs <- rfs_endpoint(d, origin)
rfs_inf <- rfs_endpoint(d, "infusion")

collett <- function(fit) {
  ev <- fit$n.event > 0
  tt <- fit$time[ev]; s <- fit$surv[ev]; se <- (fit$surv * fit$std.err)[ev]
  tol <- sqrt(.Machine$double.eps)
  i50 <- which(s <= 0.5 + tol)
  if (!length(i50)) return(c(NA, NA, NA))
  t50 <- tt[i50[1]]
  iu <- which(s >= 0.55 - tol)
  u <- if (length(iu)) tt[max(iu)] else 0
  su <- if (length(iu)) s[max(iu)] else 1
  il <- which(s <= 0.45 + tol)
  if (!length(il)) return(c(t50, NA, NA))
  sl <- s[min(il)]; l <- tt[min(il)]
  se50 <- se[i50[1]] / ((su - sl) / (l - u))
  c(t50, t50 - 1.96 * se50, t50 + 1.96 * se50)
}

km_figures <- function(prefix, time, event) {
  fit <- survfit(Surv(time, event) ~ 1)
  q <- quantile(fit, 0.5)
  out(paste0(prefix, ".n"), length(time))
  out(paste0(prefix, ".events"), sum(event))
  out(paste0(prefix, ".median_brookmeyer_crowley.median"), q$quantile)
  out(paste0(prefix, ".median_brookmeyer_crowley.lower"), q$lower)
  out(paste0(prefix, ".median_brookmeyer_crowley.upper"), q$upper)
  sym <- collett(fit)
  out(paste0(prefix, ".median_symmetric.median"), sym[1])
  out(paste0(prefix, ".median_symmetric.lower"), sym[2])
  out(paste0(prefix, ".median_symmetric.upper"), sym[3])
  days <- c(0, 90, 180, 365, 730, 1095)
  risk <- summary(fit, times = days, extend = TRUE)$n.risk
  for (i in seq_along(days)) out(sprintf("%s.risk_table.at_risk.%d", prefix, i - 1), risk[i])
}
km_figures("rfs", rfs$time, rfs$event)
km_figures("os", d$os_days, d$os_event)

# ---- log-rank comparisons ----
logrank <- function(key, time, event, group) {
  keep <- !is.na(group)
  if (length(unique(group[keep])) < 2) {
    out(paste0("logrank.", key, ".chi2"), NA)
    return(invisible())
  }
  sd <- survdiff(Surv(time[keep], event[keep]) ~ group[keep])
  out(paste0("logrank.", key, ".chi2"), sd$chisq)
  out(paste0("logrank.", key, ".df"), length(sd$n) - 1)
  out(paste0("logrank.", key, ".p_value"), pchisq(sd$chisq, length(sd$n) - 1, lower.tail = FALSE))
}
logrank("early_regeneration", rfs$time, rfs$event, rfs$early_regen)
er <- rfs[!is.na(rfs$early_regen) & rfs$early_regen == 1 &
          rfs$preemptive_category %in% c("anti_leukemic", "immunomodulatory"), ]
logrank("preemptive_category", er$time, er$event, er$preemptive_category)
logrank("mrd_positive", rfs$time, rfs$event, rfs$mrd_positive)
logrank("car_loss", rfs$time, rfs$event, rfs$car_loss)

# ---- landmark (infusion time scale) ----
lm <- rfs_inf[!is.na(rfs_inf$early_regen) & rfs_inf$time > landmark, ]
out("landmark.n_in_cohort", nrow(lm))
logrank("landmark", lm$time - landmark, lm$event, lm$early_regen)
for (g in c(1, 0)) {
  sub <- lm[lm$early_regen == g, ]
  q <- quantile(survfit(Surv(time - landmark, event) ~ 1, data = sub), 0.5)
  label <- if (g == 1) "early" else "not_early"
  out(sprintf("landmark.groups.%s.median", label), q$quantile)
  out(sprintf("landmark.groups.%s.lower", label), q$lower)
  out(sprintf("landmark.groups.%s.upper", label), q$upper)
}

# ---- Cox: early regeneration time-varying and fixed (Efron ties, Wald CI and p) ----
known <- rfs_inf[!is.na(rfs_inf$early_regen) & rfs_inf$time > 0, ]
rows <- list()
for (i in seq_len(nrow(known))) {
  p <- known[i, ]
  r <- p$regen_day
  if (p$early_regen == 1 && !is.na(r) && r > 0 && r < p$time) {
    rows[[length(rows) + 1]] <- data.frame(id = p$study_id, start = c(0, r), stop = c(r, p$time),
                                           event = c(0, p$event), early_regen = c(0, 1))
  } else {
    exposed <- as.numeric(p$early_regen == 1 && !is.na(r) && r <= 0)
    rows[[length(rows) + 1]] <- data.frame(id = p$study_id, start = 0, stop = p$time,
                                           event = p$event, early_regen = exposed)
  }
}
split <- do.call(rbind, rows)
cox_figures <- function(prefix, fit) {
  s <- summary(fit)
  out(paste0(prefix, ".coef"), s$coefficients[1, "coef"])
  out(paste0(prefix, ".se"), s$coefficients[1, "se(coef)"])
  out(paste0(prefix, ".hazard_ratio"), s$conf.int[1, "exp(coef)"])
  out(paste0(prefix, ".lower"), s$conf.int[1, "lower .95"])
  out(paste0(prefix, ".upper"), s$conf.int[1, "upper .95"])
  out(paste0(prefix, ".p_value"), s$coefficients[1, "Pr(>|z|)"])
}
out("cox.time_varying.n_intervals", nrow(split))
cox_figures("cox.time_varying",
            coxph(Surv(start, stop, event) ~ early_regen, data = split, ties = "efron"))
cox_figures("cox.time_fixed", coxph(Surv(time, event) ~ early_regen, data = known, ties = "efron"))

# ---- cumulative incidence of relapse, death without relapse competing ----
aj <- survfit(Surv(time, factor(cir, levels = 0:2)) ~ 1, data = rfs)
s <- summary(aj, times = c(180, 365))
states <- c("1" = "relapse", "2" = "death_without_relapse")
for (k in names(states)) {
  col <- which(aj$states == k)
  for (i in seq_along(s$time)) {
    key <- sprintf("cumulative_incidence.%s.%d", states[[k]], i - 1)
    out(paste0(key, ".estimate"), s$pstate[i, col])
    out(paste0(key, ".se"), s$std.err[i, col])
    out(paste0(key, ".lower"), s$lower[i, col])
    out(paste0(key, ".upper"), s$upper[i, col])
  }
}
