# R references for tests/analytics/test_tests_rmst_km_vs_r.py (one run per test module).
#   Rscript r_tests.R samples.csv OUTDIR
# samples.csv: sample, time, event, group, stratum (text). R's lung and veteran are added as
# samples here; OUTDIR/samples_all.csv is what both sides analyse, OUTDIR/reference.csv holds
# key, index, value: survdiff (rho 0 and 1, with and without strata(stratum)), G(rho, gamma)
# written from the formula (survdiff has no gamma), the trend test from survdiff's obs/exp/var,
# RMST per group (summary(fit, rmean = tau)$table) and survRM2's difference / ratio formulas,
# KM bands for conf.type log / log-log / plain, summary(fit, times =) and quantile(fit, probs).
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
x <- read.csv(args[1], stringsAsFactors = FALSE,
              colClasses = c(group = "character", stratum = "character"))
outdir <- args[2]
l <- na.omit(lung[, c("time", "status", "sex", "ph.ecog")])
add <- function(name, time, event, group, stratum) {
  data.frame(sample = name, time = time, event = event, group = as.character(group),
             stratum = as.character(stratum))
}
x <- rbind(x,
  add("lung_sex", l$time, as.integer(l$status == 2), l$sex, l$ph.ecog),
  add("lung_ecog", l$time[l$ph.ecog < 3], as.integer(l$status == 2)[l$ph.ecog < 3],
      l$ph.ecog[l$ph.ecog < 3], l$sex[l$ph.ecog < 3]),
  add("veteran_trt", veteran$time, veteran$status, veteran$trt, veteran$celltype),
  add("veteran_cell", veteran$time, veteran$status, veteran$celltype, veteran$trt))
write.csv(x, file.path(outdir, "samples_all.csv"), row.names = FALSE)
out <- list()
emit <- function(key, values) {
  values <- unname(as.numeric(values))
  out[[key]] <<- data.frame(key = key, index = seq_along(values) - 1L,
                            value = ifelse(is.na(values), "NA", sprintf("%.17g", values)))
}
# G(rho, gamma) from its definition: w = S(t-)^rho (1 - S(t-))^gamma, S pooled KM per stratum
fh <- function(d, rho, gamma) {
  lev <- sort(unique(d$group)); k <- length(lev)
  oe <- rep(0, k); v <- matrix(0, k, k); ex <- rep(0, k)
  for (s in unique(d$stratum)) {
    ds <- d[d$stratum == s, ]; km <- 1
    ut <- sort(unique(ds$time[ds$event == 1])); g <- match(ds$group, lev)
    count <- function(keep, op) {
      matrix(sapply(seq_len(k), function(j) colSums(outer(ds$time[keep & g == j], ut, op))),
             nrow = length(ut))
    }
    nrs <- count(TRUE, ">="); dds <- count(ds$event == 1, "==")
    for (i in seq_along(ut)) {
      nr <- nrs[i, ]; dd <- dds[i, ]
      n <- sum(nr); dt <- sum(dd); w <- km^rho * (1 - km)^gamma
      oe <- oe + w * (dd - dt * nr / n); ex <- ex + w * dt * nr / n
      if (n > 1) v <- v + w^2 * dt * (n - dt) / (n - 1) * (diag(nr / n) - outer(nr / n, nr / n))
      km <- km * (1 - dt / n)
    }
  }
  keep <- ex > 0
  a <- oe[keep][-1]; vv <- v[keep, keep][-1, -1, drop = FALSE]
  sum(solve(vv, a) * a)
}
for (s in unique(x$sample)) {
  d <- x[x$sample == s, ]
  k <- length(unique(d$group))
  for (rho in c(0, 1)) {
    emit(paste0(s, ".survdiff.", rho), survdiff(Surv(time, event) ~ group, d, rho = rho)$chisq)
    emit(paste0(s, ".survdiff_strata.", rho),
         survdiff(Surv(time, event) ~ group + strata(stratum), d, rho = rho)$chisq)
  }
  for (rg in list(c(1, 0), c(0, 1), c(1, 1), c(0.5, 2))) {
    tag <- paste0(rg[1], "_", rg[2])
    emit(paste0(s, ".fh.", tag), fh(transform(d, stratum = "all"), rg[1], rg[2]))
    emit(paste0(s, ".fh_strata.", tag), fh(d, rg[1], rg[2]))
  }
  if (k >= 3) {
    for (st in c(FALSE, TRUE)) {
      sd <- if (st) survdiff(Surv(time, event) ~ group + strata(stratum), d)
            else survdiff(Surv(time, event) ~ group, d)
      o <- if (is.matrix(sd$obs)) rowSums(sd$obs) else sd$obs
      e <- if (is.matrix(sd$exp)) rowSums(sd$exp) else sd$exp
      sc <- seq_len(k)
      emit(paste0(s, ".trend.", st), sum(sc * (o - e))^2 / drop(t(sc) %*% sd$var %*% sc))
    }
  }
  tau <- 0.9 * min(tapply(d$time, d$group, max))
  emit(paste0(s, ".tau"), tau)
  tab <- summary(survfit(Surv(time, event) ~ group, d), rmean = tau)$table
  emit(paste0(s, ".rmean"), tab[, "rmean"]); emit(paste0(s, ".rmean_se"), tab[, "se(rmean)"])
  r <- tab[1:2, "rmean"]; se <- tab[1:2, "se(rmean)"]; z <- qnorm(0.975)
  sdiff <- sqrt(sum(se^2)); slog <- sqrt(sum((se / r)^2))
  emit(paste0(s, ".rmst_diff"), c(r[1] - r[2], r[1] - r[2] - z * sdiff, r[1] - r[2] + z * sdiff,
                                  2 * pnorm(-abs(r[1] - r[2]) / sdiff)))
  emit(paste0(s, ".rmst_ratio"), c(r[1] / r[2], exp(log(r[1] / r[2]) + c(-1, 1) * z * slog),
                                   2 * pnorm(-abs(log(r[1] / r[2])) / slog)))
  times <- unname(quantile(d$time, c(0, 0.2, 0.5, 0.8, 1), type = 1))
  times <- unique(c(times[1] / 2, times))
  for (ct in c("log", "log-log", "plain")) {
    fit <- survfit(Surv(time, event) ~ 1, d, conf.type = ct)
    emit(paste0(s, ".band_lower.", ct), fit$lower); emit(paste0(s, ".band_upper.", ct), fit$upper)
    sm <- summary(fit, times = times)
    emit(paste0(s, ".at.times.", ct), sm$time)
    emit(paste0(s, ".at.surv.", ct), sm$surv); emit(paste0(s, ".at.se.", ct), sm$std.err)
    emit(paste0(s, ".at.lower.", ct), sm$lower); emit(paste0(s, ".at.upper.", ct), sm$upper)
    emit(paste0(s, ".at.n_risk.", ct), sm$n.risk); emit(paste0(s, ".at.n_event.", ct), sm$n.event)
    q <- quantile(fit, probs = c(0.1, 0.25, 0.5, 0.75))
    emit(paste0(s, ".q.", ct), q$quantile); emit(paste0(s, ".q_lower.", ct), q$lower)
    emit(paste0(s, ".q_upper.", ct), q$upper)
  }
}
write.csv(do.call(rbind, out), file.path(outdir, "reference.csv"), row.names = FALSE)
