-- 0008: a BRIN index on the decision index's log positions, so that retention's trim (ADR 0017)
-- finds the rows of a partition below an offset without reading the table, in batches of bounded
-- size. Rows arrive in roughly ascending offsets per partition; a BRIN index costs almost nothing per
-- insert (a b-tree would be a sixth index to maintain at the publish rate).
CREATE INDEX cds_decisions_position ON cds_decisions USING brin (partition, "offset");
