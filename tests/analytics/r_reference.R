# R's survival package on many (time, event, group, cause) samples, for
# tests/analytics/test_survival_vs_r.py.
#   Rscript r_reference.R samples.csv OUTDIR
# samples.csv: sample, time, event (0/1), group (text), cause (0 censored, 1, 2)
# Writes OUTDIR/km.csv, quantiles.csv, logrank.csv, aj.csv with survfit / quantile / survdiff
# defaults (Greenwood, conf.type "log", rho = 0, multi-state Aalen-Johansen with IJ std.err).
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
x <- read.csv(args[1], stringsAsFactors = FALSE, colClasses = c(group = "character"))
outdir <- args[2]
finite <- function(v) ifelse(is.finite(v), v, NA)
km <- list(); qs <- list(); lr <- list(); aj <- list()
for (s in unique(x$sample)) {
  d <- x[x$sample == s, ]
  fit <- survfit(Surv(time, event) ~ 1, data = d)
  km[[s]] <- data.frame(sample = s, time = fit$time, n_risk = fit$n.risk, n_event = fit$n.event,
                        n_censor = fit$n.censor, surv = fit$surv, std_err = finite(fit$std.err),
                        lower = finite(fit$lower), upper = finite(fit$upper))
  q <- quantile(fit, 0.5)
  qs[[s]] <- data.frame(sample = s, median = unname(q$quantile), lower = unname(q$lower),
                        upper = unname(q$upper))
  if (length(unique(d$group)) > 1 && sum(d$event) > 0) {
    sd <- tryCatch(survdiff(Surv(time, event) ~ group, data = d), error = function(e) NULL)
    if (!is.null(sd)) lr[[s]] <- data.frame(sample = s, chisq = sd$chisq, df = sum(sd$exp > 0) - 1)
  }
  if (sum(d$cause > 0) > 0) {
    m <- survfit(Surv(time, factor(cause, levels = 0:2)) ~ 1, data = d)
    i1 <- which(m$states == "1"); i2 <- which(m$states == "2")
    aj[[s]] <- data.frame(sample = s, time = m$time, n_risk = m$n.risk[, 1],
                          p1 = m$pstate[, i1], p2 = m$pstate[, i2],
                          se1 = m$std.err[, i1], se2 = m$std.err[, i2],
                          lower1 = finite(m$lower[, i1]), upper1 = finite(m$upper[, i1]),
                          lower2 = finite(m$lower[, i2]), upper2 = finite(m$upper[, i2]))
  }
}
save <- function(rows, name) {
  write.csv(do.call(rbind, rows), file.path(outdir, name), row.names = FALSE)
}
options(digits = 15)
save(km, "km.csv"); save(qs, "quantiles.csv"); save(lr, "logrank.csv"); save(aj, "aj.csv")
