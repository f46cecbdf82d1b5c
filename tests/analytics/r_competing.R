# R references for tests/analytics/test_competing_vs_r.py (one run per test module).
#   Rscript r_competing.R samples.csv OUTDIR
# samples.csv: sample, time, status (0 censored, 1, 2, 3 causes), group, stratum, x1, x2.
# R's mgus2 (progression = cause 1, death before progression = cause 2; complete cases) is
# added as a sample; OUTDIR/samples_all.csv is what both sides analyse. OUTDIR/reference.csv:
# key, index, value with cuminc(...)$Tests (with and without strata) and crr for each cause.
suppressPackageStartupMessages({library(survival); library(cmprsk)})
args <- commandArgs(trailingOnly = TRUE)
x <- read.csv(args[1], stringsAsFactors = FALSE,
              colClasses = c(group = "character", stratum = "character"))
outdir <- args[2]
m <- na.omit(mgus2[, c("age", "sex", "hgb", "ptime", "pstat", "futime", "death")])
x <- rbind(x, data.frame(sample = "mgus2", time = ifelse(m$pstat == 0, m$futime, m$ptime),
                         status = ifelse(m$pstat == 0, 2 * m$death, 1),
                         group = as.character(m$sex), stratum = as.character(m$age > 70),
                         x1 = m$age, x2 = m$hgb))
write.csv(x, file.path(outdir, "samples_all.csv"), row.names = FALSE)
out <- list()
emit <- function(key, values) {
  values <- unname(as.numeric(values))
  out[[key]] <<- data.frame(key = key, index = seq_along(values) - 1L,
                            value = ifelse(is.na(values), "NA", sprintf("%.17g", values)))
}
for (s in unique(x$sample)) {
  d <- x[x$sample == s, ]
  tests <- cuminc(d$time, d$status, d$group)$Tests
  emit(paste0(s, ".gray"), tests[, "stat"]); emit(paste0(s, ".gray_p"), tests[, "pv"])
  tests <- cuminc(d$time, d$status, d$group, strata = d$stratum)$Tests
  emit(paste0(s, ".gray_strata"), tests[, "stat"])
  causes <- sort(unique(d$status[d$status > 0]))
  if (s == "mgus2") causes <- 1
  for (cause in causes) {
    f <- crr(d$time, d$status, cbind(d$x1, d$x2, as.integer(d$group == sort(unique(d$group))[1])),
             failcode = cause)
    key <- paste0(s, ".crr.", cause)
    emit(paste0(key, ".coef"), f$coef); emit(paste0(key, ".se"), sqrt(diag(f$var)))
    emit(paste0(key, ".loglik"), f$loglik); emit(paste0(key, ".converged"), f$converged)
  }
}
write.csv(do.call(rbind, out), file.path(outdir, "reference.csv"), row.names = FALSE)
