# Recompute CARTtrack's window/threshold calibration grid with R's `survival` package only,
# independently of the Python code (analytics/calibration.py).
#
#   Rscript scripts/calibration.R ANALYSIS.csv BCELLS.csv
#
# ANALYSIS.csv is the analysis dataset (dashboard "Export CSV"); BCELLS.csv the B-cell course
# (study_id, day, sample, count_cells_per_ul, bcells_seen; "Export B-cell course").
# Prints "key,value" lines, key = calibration.<window>.<threshold>.<confirmation 0/1>.<figure>.
# For each window W, threshold T and confirmation: CR/CRi patients with RFS time > W whose course
# documents aplasia (a count not above T); group 1 = a count above T after aplasia known by day
# W (with confirmation: the next judged count also above T, and it by day W); time from W;
# survdiff (rho = 0) and coxph (Efron ties, Wald CI).
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE, na.strings = c("", "NA"),
              colClasses = c(study_id = "character", sex = "character"))
b <- read.csv(args[2], stringsAsFactors = FALSE, na.strings = c("", "NA"),
              colClasses = c(study_id = "character"))
b <- b[order(b$study_id, b$sample), ]
out <- function(key, value) {
  cat(key, ",", if (is.na(value)) "NA" else sprintf("%.15g", value), "\n", sep = "")
}
cr <- d[!is.na(d$cr) & d$cr == 1, ]

# Detectable at threshold t: TRUE / FALSE, NA when a % without an ALC cannot be judged.
judge <- function(count, seen, t) {
  ifelse(!is.na(count), count > t, ifelse(seen == 0, FALSE, ifelse(t == 0, TRUE, NA)))
}

# c(aplasia documented 0/1, day regeneration became known or NA)
known_day <- function(course, t, confirm) {
  v <- judge(course$count_cells_per_ul, course$bcells_seen, t)
  days <- course$day[!is.na(v)]
  v <- v[!is.na(v)]
  aplasia <- FALSE
  i <- 1
  while (i <= length(v)) {
    if (!v[i]) { aplasia <- TRUE; i <- i + 1; next }
    if (!aplasia) { i <- i + 1; next }
    if (!confirm) return(c(1, days[i]))
    if (i == length(v)) return(c(1, NA))
    if (v[i + 1]) return(c(1, days[i + 1]))
    aplasia <- TRUE
    i <- i + 2
  }
  c(as.numeric(aplasia), NA)
}

for (confirm in c(FALSE, TRUE)) for (t in c(0, 1, 5, 10, 20)) for (w in c(21, 28, 35, 45, 60, 90)) {
  key <- sprintf("calibration.%d.%g.%d", w, t, as.integer(confirm))
  at <- cr[cr$rfs_days > w, ]
  grp <- rep(NA, nrow(at))
  for (i in seq_len(nrow(at))) {
    k <- known_day(b[b$study_id == at$study_id[i], ], t, confirm)
    if (k[1] == 1) grp[i] <- as.numeric(!is.na(k[2]) && k[2] <= w)
  }
  keep <- !is.na(grp)
  time <- at$rfs_days[keep] - w
  event <- at$rfs_event[keep]
  g <- grp[keep]
  out(paste0(key, ".n_regenerated"), sum(g == 1))
  out(paste0(key, ".n_not_regenerated"), sum(g == 0))
  out(paste0(key, ".events_regenerated"), sum(event[g == 1]))
  if (length(unique(g)) < 2 || sum(event) == 0) next
  sd <- survdiff(Surv(time, event) ~ g)
  out(paste0(key, ".chi2"), sd$chisq)
  # R stops at a relative log-likelihood change of 1e-9 by default, which can leave the HR
  # ~1e-6 from the optimum; the Python side converges to ~1e-12.
  fit <- suppressWarnings(coxph(Surv(time, event) ~ g, ties = "efron",
                                control = coxph.control(eps = 1e-14, iter.max = 100)))
  s <- summary(fit)
  out(paste0(key, ".hazard_ratio"), s$conf.int[1, "exp(coef)"])
  out(paste0(key, ".lower"), s$conf.int[1, "lower .95"])
  out(paste0(key, ".upper"), s$conf.int[1, "upper .95"])
}
