# R references for tests/analytics/test_cuminc_vs_r.py (one run per test module).
#   Rscript r_cuminc.R samples.csv OUTDIR
# samples.csv: sample, time, status (0 censored, 1, 2, ... causes). R's mgus2 is added twice
# (complete cases of futime/death/ptime/pstat): "mgus2" with progression = 1 and death before
# progression = 2, and "mgus2_3causes" with those deaths split by sex (F = 2, M = 3), a derived
# third cause for the numerical comparison only. OUTDIR/samples_all.csv is what both sides
# analyse. OUTDIR/cuminc.csv: sample, cause, time, est, var as cuminc(time, status) returns them
# (each cause's step function, two rows per event time). OUTDIR/survfit.csv: sample, cause,
# time, pstate, std_err, lower, upper of survfit(Surv(time, factor(status)) ~ 1) (IJ std.err).
suppressPackageStartupMessages({library(survival); library(cmprsk)})
args <- commandArgs(trailingOnly = TRUE)
x <- read.csv(args[1], stringsAsFactors = FALSE)
outdir <- args[2]
m <- na.omit(mgus2[, c("sex", "ptime", "pstat", "futime", "death")])
time <- ifelse(m$pstat == 0, m$futime, m$ptime)
two <- ifelse(m$pstat == 0, 2 * m$death, 1)
three <- ifelse(two == 2 & m$sex == "M", 3, two)
x <- rbind(x, data.frame(sample = "mgus2", time = time, status = two),
           data.frame(sample = "mgus2_3causes", time = time, status = three))
write.csv(x, file.path(outdir, "samples_all.csv"), row.names = FALSE)
ci <- list(); sf <- list()
finite <- function(v) ifelse(is.finite(v), v, NA)
for (s in unique(x$sample)) {
  d <- x[x$sample == s, ]
  fit <- cuminc(d$time, d$status)
  for (nm in names(fit)) {
    ci[[paste(s, nm)]] <- data.frame(sample = s, cause = as.integer(sub(".* ", "", nm)),
                                     time = fit[[nm]]$time, est = fit[[nm]]$est,
                                     var = fit[[nm]]$var)
  }
  causes <- sort(unique(d$status[d$status > 0]))
  ms <- survfit(Surv(time, factor(status, levels = c(0, causes))) ~ 1, data = d)
  for (cause in causes) {
    i <- which(ms$states == as.character(cause))
    sf[[paste(s, cause)]] <- data.frame(sample = s, cause = cause, time = ms$time,
                                        n_risk = ms$n.risk[, 1], pstate = ms$pstate[, i],
                                        std_err = ms$std.err[, i], lower = finite(ms$lower[, i]),
                                        upper = finite(ms$upper[, i]))
  }
}
options(digits = 17)
write.csv(do.call(rbind, ci), file.path(outdir, "cuminc.csv"), row.names = FALSE)
write.csv(do.call(rbind, sf), file.path(outdir, "survfit.csv"), row.names = FALSE)
