# R references for tests/analytics/test_coxph_vs_r.py (one run per test module).
#   Rscript r_models.R INDIR OUTDIR
# Exports R's lung, veteran, colon and heart datasets to OUTDIR/<name>.csv (the Python side fits
# the same rows), reads INDIR/synthetic_rows.csv (counting-process rows of the synthetic cohort)
# and writes OUTDIR/reference.csv: key, index, value (every value to 17 significant digits).
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
indir <- args[1]; outdir <- args[2]
out <- list()
emit <- function(key, values) {
  values <- unname(as.numeric(values))
  out[[key]] <<- data.frame(key = key, index = seq_along(values) - 1L,
                            value = sprintf("%.17g", values))
}
model <- function(key, fit) {
  emit(paste0(key, ".coef"), coef(fit))
  emit(paste0(key, ".se"), sqrt(diag(vcov(fit))))
  emit(paste0(key, ".naive_se"),
       sqrt(diag(if (is.null(fit$naive.var)) fit$var else fit$naive.var)))
  emit(paste0(key, ".loglik"), fit$loglik)
  emit(paste0(key, ".wald"), fit$wald.test)
  emit(paste0(key, ".score"), fit$score)
  emit(paste0(key, ".lr"), 2 * diff(fit$loglik))
  ci <- summary(fit)$conf.int
  emit(paste0(key, ".lower"), ci[, "lower .95"]); emit(paste0(key, ".upper"), ci[, "upper .95"])
  z <- cox.zph(fit)$table
  emit(paste0(key, ".zph_chisq"), z[, "chisq"]); emit(paste0(key, ".zph_df"), z[, "df"])
  emit(paste0(key, ".zph_p"), z[, "p"])
}
lung2 <- na.omit(lung[, c("time", "status", "age", "sex", "ph.ecog", "inst")])
lung2$id <- seq_len(nrow(lung2)); lung2$dead <- as.integer(lung2$status == 2)
vet <- veteran; vet$celltype <- as.character(vet$celltype)
col <- na.omit(colon[, c("id", "time", "status", "rx", "age", "nodes", "etype")])
col$rx <- as.character(col$rx)
hrt <- heart
for (d in list(list("lung", lung2), list("veteran", vet), list("colon", col),
               list("heart", hrt))) {
  write.csv(d[[2]], file.path(outdir, paste0(d[[1]], ".csv")), row.names = FALSE)
}
vet$celltype <- factor(vet$celltype, levels = levels(veteran$celltype))
col$rx <- factor(col$rx, levels = levels(colon$rx))
for (ties in c("efron", "breslow")) {
  model(paste0("lung.", ties), coxph(Surv(time, dead) ~ age + sex + ph.ecog, lung2, ties = ties))
  model(paste0("lung_strata_robust.", ties),
        coxph(Surv(time, dead) ~ age + sex + ph.ecog + strata(inst), lung2, cluster = id,
              ties = ties))
  model(paste0("veteran.", ties), coxph(Surv(time, status) ~ trt + karno + celltype, vet,
                                        ties = ties))
  model(paste0("veteran_strata.", ties),
        coxph(Surv(time, status) ~ trt + karno + celltype + strata(prior), vet, ties = ties))
  model(paste0("colon.", ties), coxph(Surv(time, status) ~ rx + age + nodes + strata(etype),
                                      col, cluster = id, ties = ties))
  model(paste0("heart.", ties), coxph(Surv(start, stop, event) ~ age + surgery + transplant,
                                      hrt, cluster = id, ties = ties))
}
syn <- read.csv(file.path(indir, "synthetic_rows.csv"), stringsAsFactors = FALSE)
for (ties in c("efron", "breslow")) {
  model(paste0("synthetic_strata.", ties),
        coxph(Surv(start, stop, event) ~ early_regen + mrd_positive + car_loss +
                age_at_infusion + strata(center), syn, cluster = study_id, ties = ties))
  model(paste0("synthetic_center.", ties),
        coxph(Surv(start, stop, event) ~ early_regen + age_at_infusion + factor(center), syn,
              ties = ties))
}
write.csv(do.call(rbind, out), file.path(outdir, "reference.csv"), row.names = FALSE)
