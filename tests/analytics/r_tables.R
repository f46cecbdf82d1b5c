# R references for tests/analytics/test_publication_tables.py: Table 1's p-values.
#   Rscript r_tables.R cohort.csv OUT.csv
# For each grouping (early_regen, center) and each characteristic: wilcox.test (2 groups) or
# kruskal.test (more) for age; fisher.test for a 2 x 2 table, chisq.test(correct = FALSE)
# otherwise. Writes grouping, variable, p.
args <- commandArgs(trailingOnly = TRUE)
x <- read.csv(args[1], stringsAsFactors = FALSE, na.strings = c("", "NA"))
vars <- c("sex", "product", "center", "best_response", "early_regen", "mrd_positive",
          "car_loss", "preemptive_category")
rows <- list()
for (grouping in c("early_regen", "center")) {
  g <- as.character(x[[grouping]])
  ok <- !is.na(g) & !is.na(x$age_at_infusion)
  p <- if (length(unique(g[ok])) == 2) wilcox.test(x$age_at_infusion[ok] ~ g[ok])$p.value
       else kruskal.test(x$age_at_infusion[ok] ~ factor(g[ok]))$p.value
  rows[[length(rows) + 1]] <- data.frame(grouping = grouping, variable = "age_at_infusion", p = p)
  for (v in setdiff(vars, grouping)) {
    ok <- !is.na(g) & !is.na(x[[v]])
    tab <- table(as.character(x[[v]][ok]), g[ok])
    if (nrow(tab) < 2 || ncol(tab) < 2) next
    p <- if (all(dim(tab) == 2)) fisher.test(tab)$p.value
         else suppressWarnings(chisq.test(tab, correct = FALSE)$p.value)
    rows[[length(rows) + 1]] <- data.frame(grouping = grouping, variable = v, p = p)
  }
}
options(digits = 17)
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
