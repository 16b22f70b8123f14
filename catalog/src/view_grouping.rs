//! Partial aggregation on one text column, grouped by the column's string views.
//!
//! Region codes (`kode_kecamatan`, `kode_wilayah`) are the usual `GROUP BY` keys, and the
//! lake stores them dictionary-encoded. The Parquet reader decodes a dictionary page into a
//! `Utf8View` array whose rows share their dictionary entry's 16-byte view, so rows with
//! the same code carry the same view. DataFusion's group map hashes and compares every row's
//! bytes; [`ViewKeyedAggregateExec`] looks each row's view up in a small table instead and
//! goes to the bytes only the first time a view shows up. It replaces the `Partial` stage of
//! an aggregation keyed on one `Utf8View` column and produces the same partial states, which
//! DataFusion's final stage merges as before.
//!
//! Two things keep the answer right whatever the data looks like: a view only stands for its
//! bytes while the buffers it points into are alive, so the table keeps the buffers it was
//! filled from and starts empty for any other batch; and when the keys turn out to be nearly
//! unique (most rows a new group), the stage stops grouping and passes each row on as its own
//! partial state, exactly as DataFusion's own partial stage does.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringViewArray, StringViewBuilder};
use arrow::buffer::Buffer;
use arrow::compute::{FilterBuilder, prep_null_mask_filter};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{ColumnarValue, EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionRef;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, aggregate_expressions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
};
use futures::StreamExt;

use crate::comparisons::Comparisons;

/// A slot of the view table that holds no view.
const EMPTY: u32 = u32::MAX;

/// The physical optimizer rule that puts [`ViewKeyedAggregateExec`] in place of the
/// `Partial` stage of every aggregation it can take.
#[derive(Debug, Default)]
pub struct ViewKeyedGrouping;

impl PhysicalOptimizerRule for ViewKeyedGrouping {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            match ViewKeyedAggregateExec::try_new(Arc::new(aggregate.clone()))? {
                Some(exec) => Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>)),
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "view_keyed_grouping"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The `Partial` stage of an aggregation keyed on one `Utf8View` column, grouping rows by
/// their views. Its output is the replaced [`AggregateExec`]'s: the key, then each
/// aggregate's partial state.
#[derive(Debug)]
pub struct ViewKeyedAggregateExec {
    /// The stage this one replaces; it holds the expressions and the schemas, and (unless
    /// a filter was taken in) the input.
    aggregate: Arc<AggregateExec>,
    /// The `FilterExec` right under the aggregate, taken into this stage: its predicate
    /// decides which rows count, so no filtered batch is built. This stage then reads the
    /// filter's input.
    filter: Option<Arc<FilterExec>>,
    /// Every aggregate's arguments, evaluated against the input.
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    metrics: ExecutionPlanMetricsSet,
}

impl ViewKeyedAggregateExec {
    /// This stage in place of `aggregate`, or `None` when `aggregate` is not a partial
    /// aggregation on one plain `Utf8View` column whose aggregates all accumulate by group
    /// and need no input order.
    pub fn try_new(aggregate: Arc<AggregateExec>) -> DfResult<Option<Self>> {
        let group_by = aggregate.group_expr();
        let plain = *aggregate.mode() == AggregateMode::Partial
            && group_by.is_single()
            && group_by.expr().len() == 1
            && aggregate.limit_options().is_none()
            && aggregate.dynamic_expressions_produced().is_empty()
            && *aggregate.input_order_mode() == InputOrderMode::Linear
            && !aggregate.aggr_expr().is_empty()
            && aggregate.aggr_expr().iter().all(|a| supported(a));
        if !plain {
            return Ok(None);
        }
        let (key, _) = &group_by.expr()[0];
        let input_schema = aggregate.input().schema();
        if key.downcast_ref::<Column>().is_none()
            || key.data_type(&input_schema)? != DataType::Utf8View
            || aggregate.schema().field(0).data_type() != &DataType::Utf8View
        {
            return Ok(None);
        }
        let arguments = aggregate_expressions(aggregate.aggr_expr(), aggregate.mode(), 0)?;
        // A filter with no row limit of its own is evaluated here.
        let filter = aggregate
            .input()
            .downcast_ref::<FilterExec>()
            .filter(|f| f.fetch().is_none())
            .map(|f| Arc::new(f.clone()));
        Ok(Some(Self {
            aggregate,
            filter,
            arguments,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn key(&self) -> &Arc<dyn PhysicalExpr> {
        &self.aggregate.group_expr().expr()[0].0
    }

    /// The plan this stage reads.
    fn input(&self) -> &Arc<dyn ExecutionPlan> {
        match &self.filter {
            Some(filter) => filter.input(),
            None => self.aggregate.input(),
        }
    }
}

fn supported(aggregate: &AggregateFunctionExpr) -> bool {
    aggregate.groups_accumulator_supported()
        && aggregate.order_bys().is_empty()
        && !aggregate.is_distinct()
}

impl DisplayAs for ViewKeyedAggregateExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                let (key, alias) = &self.aggregate.group_expr().expr()[0];
                let aggregates: Vec<&str> = self
                    .aggregate
                    .aggr_expr()
                    .iter()
                    .map(|a| a.name())
                    .collect();
                write!(
                    f,
                    "ViewKeyedAggregateExec: mode=Partial, gby=[{key} as {alias}], aggr=[{}]",
                    aggregates.join(", ")
                )?;
                if let Some(filter) = &self.filter {
                    write!(f, ", filter=[{}]", filter.predicate())?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => write!(f, "mode=Partial"),
        }
    }
}

impl ExecutionPlan for ViewKeyedAggregateExec {
    fn name(&self) -> &'static str {
        "ViewKeyedAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        if let Some(filter) = &self.filter
            && filter.apply_expressions(f)? == TreeNodeRecursion::Stop
        {
            return Ok(TreeNodeRecursion::Stop);
        }
        self.aggregate.apply_expressions(f)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let children = match &self.filter {
            Some(filter) => vec![Arc::clone(filter).with_new_children(children)?],
            None => children,
        };
        let replaced = Arc::clone(&self.aggregate).with_new_children(children)?;
        let Some(aggregate) = replaced.downcast_ref::<AggregateExec>() else {
            return Ok(replaced);
        };
        match Self::try_new(Arc::new(aggregate.clone()))? {
            Some(exec) => Ok(Arc::new(exec)),
            None => Ok(replaced),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input().execute(partition, Arc::clone(&context))?;
        let accumulators = self
            .aggregate
            .aggr_expr()
            .iter()
            .map(|a| a.create_groups_accumulator())
            .collect::<DfResult<Vec<_>>>()?;
        let options = context.session_config().options();
        let reservation = MemoryConsumer::new(format!("ViewKeyedAggregateExec[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let state = Grouping {
            schema: self.schema(),
            key: Arc::clone(self.key()),
            predicate: self.filter.as_ref().map(|f| {
                let predicate = match Comparisons::of(f.predicate(), &f.input().schema()) {
                    Some(comparisons) => Predicate::Comparisons(comparisons),
                    None => Predicate::Expr(Arc::clone(f.predicate())),
                };
                (predicate, f.projection().clone())
            }),
            arguments: self.arguments.clone(),
            filters: self.aggregate.filter_expr().to_vec(),
            accumulators,
            groups: Groups::default(),
            views: ViewTable::new(),
            group_indices: Vec::new(),
            batch_size: options.execution.batch_size.get(),
            probe_rows: options
                .execution
                .skip_partial_aggregation_probe_rows_threshold,
            probe_ratio: options
                .execution
                .skip_partial_aggregation_probe_ratio_threshold,
            rows_seen: 0,
            probing: true,
            passing_through: false,
            reservation,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            pending: VecDeque::new(),
        };
        let schema = self.schema();
        let stream = futures::stream::unfold((input, Some(state)), |(mut input, state)| async {
            let mut state = state?;
            loop {
                if let Some(batch) = state.pending.pop_front() {
                    return Some((Ok(batch), (input, Some(state))));
                }
                match input.next().await {
                    Some(Ok(batch)) => {
                        if let Err(e) = state.consume(&batch) {
                            return Some((Err(e), (input, None)));
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), (input, None))),
                    None => {
                        if let Err(e) = state.emit_all() {
                            return Some((Err(e), (input, None)));
                        }
                        let batch = state.pending.pop_front()?;
                        return Some((Ok(batch), (input, Some(state))));
                    }
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The groups seen so far: each distinct key once, in the order the groups were made.
#[derive(Default)]
struct Groups {
    ids: HashMap<String, u32>,
    keys: Vec<Option<String>>,
    null: Option<u32>,
    key_bytes: usize,
}

impl Groups {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn id_of(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.keys.len() as u32;
        self.keys.push(Some(key.to_string()));
        self.ids.insert(key.to_string(), id);
        self.key_bytes += 2 * key.len();
        id
    }

    fn null_id(&mut self) -> u32 {
        *self.null.get_or_insert_with(|| {
            self.keys.push(None);
            (self.keys.len() - 1) as u32
        })
    }

    fn size(&self) -> usize {
        self.key_bytes
            + self.keys.capacity() * std::mem::size_of::<Option<String>>()
            + self.ids.capacity() * (std::mem::size_of::<(String, u32)>() + 8)
    }

    /// The keys as an array, group by group, leaving no group behind.
    fn take(&mut self) -> ArrayRef {
        let mut builder = StringViewBuilder::with_capacity(self.keys.len());
        for key in self.keys.drain(..) {
            builder.append_option(key);
        }
        *self = Self::default();
        Arc::new(builder.finish())
    }
}

/// Views already resolved to their group, valid for the buffers they were read from.
struct ViewTable {
    views: Vec<u128>,
    groups: Vec<u32>,
    len: usize,
    /// 64 minus the log2 of the slot count.
    shift: u32,
    /// The data buffers the views point into, kept alive so that no other buffer can take
    /// their addresses while the table holds views into them.
    buffers: Vec<Buffer>,
}

impl ViewTable {
    fn new() -> Self {
        Self {
            views: vec![0; 256],
            groups: vec![EMPTY; 256],
            len: 0,
            shift: 64 - 8,
            buffers: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.groups.fill(EMPTY);
        self.len = 0;
    }

    /// Empties the table unless `array`'s data buffers are the ones its views came from.
    fn use_buffers_of(&mut self, array: &StringViewArray) {
        let buffers = array.data_buffers();
        let same = buffers.len() == self.buffers.len()
            && buffers
                .iter()
                .zip(&self.buffers)
                .all(|(a, b)| a.as_ptr() == b.as_ptr() && a.len() == b.len());
        if !same {
            self.clear();
            self.buffers = buffers.to_vec();
        }
    }

    /// The view's first slot: the top bits of a multiplicative hash, which every bit of the
    /// view reaches (inline codes differ only in a few bytes, long ones in their offsets).
    #[inline]
    fn slot(&self, view: u128) -> usize {
        let mixed = ((view as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (view >> 64) as u64)
            .wrapping_mul(0xD6E8_FEB8_6659_FD93);
        (mixed >> self.shift) as usize
    }

    /// The group of row `row` of `array`, whose view is `view`.
    #[inline(always)]
    fn group_of(
        &mut self,
        view: u128,
        array: &StringViewArray,
        row: usize,
        groups: &mut Groups,
    ) -> u32 {
        let mask = self.views.len() - 1;
        let mut slot = self.slot(view);
        loop {
            let group = self.groups[slot];
            if group != EMPTY && self.views[slot] == view {
                return group;
            }
            if group == EMPTY {
                return self.insert(slot, view, array, row, groups);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// A view first seen: its group comes from its bytes.
    #[cold]
    #[inline(never)]
    fn insert(
        &mut self,
        slot: usize,
        view: u128,
        array: &StringViewArray,
        row: usize,
        groups: &mut Groups,
    ) -> u32 {
        let group = groups.id_of(array.value(row));
        self.views[slot] = view;
        self.groups[slot] = group;
        self.len += 1;
        if self.len * 2 > self.views.len() {
            self.grow();
        }
        group
    }

    fn grow(&mut self) {
        let slots = self.views.len() * 2;
        self.shift -= 1;
        let old_views = std::mem::replace(&mut self.views, vec![0; slots]);
        let old_groups = std::mem::replace(&mut self.groups, vec![EMPTY; slots]);
        let mask = self.views.len() - 1;
        for (view, group) in old_views.into_iter().zip(old_groups) {
            if group == EMPTY {
                continue;
            }
            let mut slot = self.slot(view);
            while self.groups[slot] != EMPTY {
                slot = (slot + 1) & mask;
            }
            self.views[slot] = view;
            self.groups[slot] = group;
        }
    }

    fn size(&self) -> usize {
        self.views.capacity() * 16 + self.groups.capacity() * 4
    }
}

/// A filter's predicate: its comparisons with literals, evaluated into one bitmask, when
/// that is all it is ([`Comparisons`]), else the expression as DataFusion evaluates it.
enum Predicate {
    Comparisons(Comparisons),
    Expr(Arc<dyn PhysicalExpr>),
}

impl Predicate {
    /// The rows of `batch` for which the predicate is true (a null is a no).
    fn passing(&self, batch: &RecordBatch) -> DfResult<BooleanArray> {
        match self {
            Predicate::Comparisons(comparisons) => {
                Ok(BooleanArray::new(comparisons.evaluate(batch)?, None))
            }
            Predicate::Expr(predicate) => {
                let mask = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
                let mask = mask.as_boolean_opt().ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "the filter's predicate gave {}, not booleans",
                        mask.data_type()
                    ))
                })?;
                Ok(match mask.null_count() {
                    0 => mask.clone(),
                    _ => prep_null_mask_filter(mask),
                })
            }
        }
    }
}

/// One partition's aggregation state.
struct Grouping {
    schema: SchemaRef,
    key: Arc<dyn PhysicalExpr>,
    /// A filter taken in: its predicate, on the input, and the columns it hands on.
    predicate: Option<(Predicate, Option<ProjectionRef>)>,
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    groups: Groups,
    views: ViewTable,
    group_indices: Vec<usize>,
    batch_size: usize,
    probe_rows: usize,
    probe_ratio: f64,
    rows_seen: usize,
    /// Still deciding whether grouping pays (it does not when nearly every row is a group).
    probing: bool,
    /// Rows go on as their own partial states, ungrouped.
    passing_through: bool,
    reservation: MemoryReservation,
    baseline: BaselineMetrics,
    /// Output batches not yet handed on.
    pending: VecDeque<RecordBatch>,
}

impl Grouping {
    fn consume(&mut self, batch: &RecordBatch) -> DfResult<()> {
        let elapsed = self.baseline.elapsed_compute().clone();
        let _timer = elapsed.timer();
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        // With a filter taken in: which rows pass (a null is a no), and the filter's
        // output columns, which the aggregate's expressions refer to. Passing rows through,
        // only those that pass become partial states. Otherwise only the rows that pass
        // reach the accumulators: their arguments are taken out of the batch column by
        // column (the key column is not copied; its views are read in place), so the
        // accumulators run without a row filter, whose per-row test costs more than the
        // copy when many rows fail.
        let (batch, passing) = match &self.predicate {
            None => (batch.clone(), None),
            Some((predicate, projection)) => {
                let mask = predicate.passing(batch)?;
                let selection = FilterBuilder::new(&mask).optimize().build();
                if selection.count() == 0 {
                    return Ok(());
                }
                let batch = match projection {
                    Some(columns) => batch.project(columns)?,
                    None => batch.clone(),
                };
                if self.passing_through {
                    (selection.filter_record_batch(&batch)?, None)
                } else {
                    (batch, Some((mask, selection)))
                }
            }
        };
        let rows = batch.num_rows();
        let batch = &batch;
        let selected = passing
            .as_ref()
            .map_or(rows, |(_, selection)| selection.count());
        let passing_rows = |value: ColumnarValue| -> DfResult<ArrayRef> {
            match (value, &passing) {
                (ColumnarValue::Array(array), Some((_, selection))) => {
                    Ok(selection.filter(&array)?)
                }
                (ColumnarValue::Array(array), None) => Ok(array),
                (ColumnarValue::Scalar(scalar), _) => scalar.to_array_of_size(selected),
            }
        };
        let keys = self.key.evaluate(batch)?.into_array(rows)?;
        let arguments = self
            .arguments
            .iter()
            .map(|exprs| {
                exprs
                    .iter()
                    .map(|e| e.evaluate(batch).and_then(passing_rows))
                    .collect::<DfResult<Vec<ArrayRef>>>()
            })
            .collect::<DfResult<Vec<_>>>()?;
        let filters = self
            .filters
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|f| f.evaluate(batch).and_then(passing_rows))
                    .transpose()
            })
            .collect::<DfResult<Vec<Option<ArrayRef>>>>()?;
        if self.passing_through {
            return self.pass_through(keys, &arguments, &filters);
        }
        let keys = keys.as_string_view_opt().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "ViewKeyedAggregateExec expects Utf8View keys, got {}",
                keys.data_type()
            ))
        })?;
        self.views.use_buffers_of(keys);
        self.group_indices.clear();
        let (table, groups) = (&mut self.views, &mut self.groups);
        let views = keys.views();
        let nulls = keys.nulls().filter(|n| n.null_count() > 0);
        let group = |row: usize| match nulls {
            Some(nulls) if nulls.is_null(row) => groups.null_id() as usize,
            _ => table.group_of(views[row], keys, row, groups) as usize,
        };
        match (&passing, nulls) {
            // Every row, in order: the views are read straight from their slice.
            (None, None) => self.group_indices.extend(
                views
                    .iter()
                    .enumerate()
                    .map(|(row, &view)| table.group_of(view, keys, row, groups) as usize),
            ),
            (None, Some(_)) => self.group_indices.extend((0..rows).map(group)),
            (Some((mask, _)), _) => self
                .group_indices
                .extend(mask.values().set_indices().map(group)),
        }
        let total = self.groups.len();
        for ((accumulator, values), filter) in
            self.accumulators.iter_mut().zip(&arguments).zip(&filters)
        {
            let filter = filter.as_ref().map(|f| f.as_boolean());
            accumulator.update_batch(values, &self.group_indices, filter, total)?;
        }
        // The probe compares groups with the rows the aggregate is given: those that pass.
        self.rows_seen += selected;
        if self.probing && self.rows_seen >= self.probe_rows {
            self.probing = false;
            let ratio = self.groups.len() as f64 / self.rows_seen as f64;
            if ratio > self.probe_ratio {
                self.passing_through = true;
                return self.emit_all();
            }
        }
        let size = self.groups.size()
            + self.views.size()
            + self.group_indices.capacity() * 8
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>();
        if self.reservation.try_resize(size).is_err() {
            // A partial stage may hand on what it holds at any time: the final stage merges
            // the same group's partial states.
            self.emit_all()?;
        }
        Ok(())
    }

    /// Each row as its own partial state (nearly every key is new, so grouping costs more
    /// than it saves).
    fn pass_through(
        &mut self,
        keys: ArrayRef,
        arguments: &[Vec<ArrayRef>],
        filters: &[Option<ArrayRef>],
    ) -> DfResult<()> {
        let mut columns = vec![keys];
        for ((accumulator, values), filter) in
            self.accumulators.iter_mut().zip(arguments).zip(filters)
        {
            let filter: Option<&BooleanArray> = filter.as_ref().map(|f| f.as_boolean());
            columns.extend(accumulator.convert_to_state(values, filter)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        self.baseline.record_output(batch.num_rows());
        self.pending.push_back(batch);
        Ok(())
    }

    /// Hands on every group held, in batches, and starts over with none.
    fn emit_all(&mut self) -> DfResult<()> {
        if self.groups.len() == 0 {
            return Ok(());
        }
        let mut columns = vec![self.groups.take()];
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.state(EmitTo::All)?);
        }
        self.views.clear();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        self.baseline.record_output(batch.num_rows());
        let mut offset = 0;
        while offset < batch.num_rows() {
            let length = self.batch_size.min(batch.num_rows() - offset);
            self.pending.push_back(batch.slice(offset, length));
            offset += length;
        }
        self.reservation.free();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::memory_pool::FairSpillPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::lake::{CommitOptions, Lake, LakeTable, WriteMode};
    use crate::session::SessionSettings;

    /// Region codes short enough to sit inside a view (at most 12 bytes) and longer ones
    /// that point into the dictionary buffer.
    fn code(i: usize) -> String {
        match i % 3 {
            0 => format!("32.14.{:02}", i % 17),
            1 => format!("32.14.{:02}.{}", i % 17, 2001 + i % 40),
            _ => String::new(),
        }
    }

    /// 60,000 rows in 6 files, each file its own dictionaries: `k` a region code (null every
    /// 97th row), `v` a number (null every 89th), `u` unique per row, `w` one of 5,000 values
    /// (each twice in every file).
    async fn lake_table(dir: &tempfile::TempDir) -> Arc<dyn datafusion::catalog::TableProvider> {
        let lake = Lake::new(&format!("file://{}", dir.path().display()), HashMap::new()).unwrap();
        let table = LakeTable::Data("stats.uji".parse().unwrap());
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new("u", DataType::Utf8, false),
            Field::new("w", DataType::Utf8, false),
        ]));
        for file in 0..6 {
            let rows: Vec<usize> = (file * 10_000..(file + 1) * 10_000).collect();
            // Each file sees the codes in another order, so dictionary positions differ.
            let k: StringArray = rows
                .iter()
                .map(|&i| (i % 97 != 0).then(|| code((i * (file + 1)) % 120)))
                .collect();
            let v: Int64Array = rows
                .iter()
                .map(|&i| (i % 89 != 0).then_some((i as i64 * 7919) % 1000))
                .collect();
            let u: StringArray = rows.iter().map(|i| Some(format!("u{i:08}"))).collect();
            let w: StringArray = rows
                .iter()
                .map(|i| Some(format!("w{:06}", i % 5000)))
                .collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(k), Arc::new(v), Arc::new(u), Arc::new(w)],
            )
            .unwrap();
            lake.write_batches(
                &table,
                schema.clone(),
                &[],
                vec![batch],
                WriteMode::Append,
                CommitOptions::default(),
            )
            .await
            .unwrap();
        }
        let delta = lake.load_existing(&table).await.unwrap();
        crate::scan::table_provider(&delta).await.unwrap()
    }

    fn context(on: bool, memory_limit: Option<usize>) -> SessionContext {
        let settings = SessionSettings {
            view_keyed_grouping: on,
            batch_size: 4096,
            target_partitions: 2,
            ..SessionSettings::default()
        };
        let runtime = match memory_limit {
            Some(limit) => RuntimeEnvBuilder::new()
                .with_memory_pool(Arc::new(FairSpillPool::new(limit)))
                .build_arc()
                .unwrap(),
            None => settings.runtime().unwrap(),
        };
        settings.context(settings.session_config(), runtime)
    }

    /// Rows the plan's [`ViewKeyedAggregateExec`]s handed on, if it has any.
    fn partial_rows(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
        let own = plan
            .downcast_ref::<ViewKeyedAggregateExec>()
            .map(|exec| exec.metrics().and_then(|m| m.output_rows()).unwrap_or(0));
        plan.children()
            .into_iter()
            .filter_map(partial_rows)
            .chain(own)
            .reduce(|a, b| a + b)
    }

    /// The result of `sql` with the rule on and off, and the rows the partial stage handed on
    /// with it on (`None`: the rule did not take the plan).
    async fn both_ways(
        provider: &Arc<dyn datafusion::catalog::TableProvider>,
        settings: &[&str],
        memory_limit: Option<usize>,
        sql: &str,
    ) -> (String, String, Option<usize>) {
        let mut results = Vec::new();
        let mut used = None;
        for on in [true, false] {
            let ctx = context(on, memory_limit);
            for set in settings {
                ctx.sql(set).await.unwrap();
            }
            ctx.register_table("t", provider.clone()).unwrap();
            let frame = ctx.sql(sql).await.unwrap();
            let plan = frame.create_physical_plan().await.unwrap();
            let shown = displayable(plan.as_ref()).indent(true).to_string();
            assert_eq!(
                on && shown.contains("ViewKeyedAggregateExec"),
                shown.contains("ViewKeyedAggregateExec"),
                "{shown}"
            );
            let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
                .await
                .unwrap();
            if on {
                used = partial_rows(&plan);
            }
            results.push(pretty_format_batches(&batches).unwrap().to_string());
        }
        let off = results.pop().unwrap();
        (results.pop().unwrap(), off, used)
    }

    #[tokio::test]
    async fn grouping_by_views_answers_as_datafusion_does() {
        let dir = tempfile::tempdir().unwrap();
        let provider = lake_table(&dir).await;
        for sql in [
            "select k, count(*) as n, sum(v) as s, avg(v) as a, min(v) as lo, max(v) as hi, count(v) as nv \
             from t group by k order by k nulls first",
            "select k, count(*) as n, avg(v) as a from t where v > 500 group by k order by n desc, k limit 10",
            "select k, count(*) filter (where v % 2 = 0) as even, sum(v) filter (where v < 100) as small \
             from t group by k order by k nulls last",
            "select max(v) as hi, k from t where k like '32.14.0%' group by k having count(*) > 10 order by k",
            // Comparisons joined by AND, with an aggregate's own FILTER and the null key.
            "select k, count(*) filter (where v % 2 = 0) as even, sum(v) as s, avg(v) as a from t \
             where v >= 100 and v < 900 group by k order by k nulls first",
            "select k, count(*) as n, count(v) as nv from t where v < 50 group by k order by k nulls first",
        ] {
            let (on, off, used) = both_ways(&provider, &[], None, sql).await;
            assert!(used.is_some(), "the rule takes {sql}");
            assert_eq!(on, off, "{sql}");
            assert!(on.lines().count() > 8, "{sql} has groups:\n{on}");
        }
        // The filter under the aggregate is evaluated inside it; a key whose rows all fail
        // it makes no group, and a null predicate (null v) fails.
        let ctx = context(true, None);
        ctx.register_table("t", provider.clone()).unwrap();
        let sql = "select k, count(*) as n, max(v) as hi from t where v > 990 or k = '32.14.01' group by k order by k";
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let shown = displayable(plan.as_ref()).indent(true).to_string();
        assert!(
            shown.contains("ViewKeyedAggregateExec")
                && shown.contains("filter=[")
                && !shown.contains("FilterExec"),
            "{shown}"
        );
        let (on, off, _) = both_ways(&provider, &[], None, sql).await;
        assert_eq!(on, off);
        let (rare, rare_off, _) = both_ways(
            &provider,
            &[],
            None,
            "select k, count(*) as n from t where v = 999 group by k order by k",
        )
        .await;
        assert_eq!(rare, rare_off);
        let (all, _, _) = both_ways(
            &provider,
            &[],
            None,
            "select k, count(*) as n from t group by k order by k",
        )
        .await;
        assert!(
            rare.lines().count() < all.lines().count(),
            "only keys with passing rows:\n{rare}"
        );
        // A null key is a group of its own.
        let (on, _, _) = both_ways(
            &provider,
            &[],
            None,
            "select k, count(*) as n from t group by k order by k nulls first limit 1",
        )
        .await;
        assert!(on.contains("|   | 619 |"), "{on}");
    }

    #[tokio::test]
    async fn other_aggregations_keep_datafusion_s_own_stage() {
        let dir = tempfile::tempdir().unwrap();
        let provider = lake_table(&dir).await;
        for (sql, taken) in [
            // Two keys, a computed key, an ordered aggregate, no key: DataFusion's own.
            ("select k, v, count(*) from t group by k, v", false),
            ("select upper(k), count(*) from t group by upper(k)", false),
            ("select k, array_agg(v order by v) from t group by k", false),
            ("select count(*), 1 from t", false),
            // A distinct count groups by (k, v) first, then counts by k: the second stage
            // is taken.
            ("select k, count(distinct v) from t group by k", true),
        ] {
            let (on, off, used) = both_ways(
                &provider,
                &[],
                None,
                &format!("select * from ({sql}) order by 1, 2"),
            )
            .await;
            assert_eq!(used.is_some(), taken, "{sql}");
            assert_eq!(on, off, "{sql}");
        }
    }

    #[tokio::test]
    async fn nearly_unique_keys_pass_through_as_partial_states() {
        let dir = tempfile::tempdir().unwrap();
        let provider = lake_table(&dir).await;
        let probe =
            ["set datafusion.execution.skip_partial_aggregation_probe_rows_threshold = 1000"];
        let sql = "select u, count(*) as n, sum(v) as s from t group by u order by u";
        let (on, off, handed_on) = both_ways(&provider, &probe, None, sql).await;
        assert_eq!(handed_on, Some(60_000), "every row handed on as it came");
        assert_eq!(on, off);
        assert_eq!(on.lines().count(), 60_000 + 4, "one group per row");
        // Filtered, only the passing rows are handed on.
        let sql = "select u, count(*) as n, sum(v) as s from t where v < 100 group by u order by u";
        let (on, off, handed_on) = both_ways(&provider, &probe, None, sql).await;
        assert_eq!(on, off);
        let groups = on.lines().count() - 4;
        assert!(groups > 1_000 && groups < 10_000, "{groups} groups");
        assert_eq!(handed_on, Some(groups));
    }

    #[tokio::test]
    async fn under_a_tight_memory_limit_partial_groups_are_handed_on_early() {
        let dir = tempfile::tempdir().unwrap();
        let provider = lake_table(&dir).await;
        // Never pass through: only the memory limit stops the groups from piling up.
        let settings = [
            "set datafusion.execution.skip_partial_aggregation_probe_ratio_threshold = 1.0",
            "set datafusion.execution.sort_spill_reservation_bytes = 262144",
        ];
        let sql = "select w, count(*) as n, max(v) as hi from t group by w order by w";
        let (_, _, roomy) = both_ways(&provider, &settings, None, sql).await;
        // With room, each partition holds each of the 5,000 keys once: 5,000 per partition
        // that read any rows (how DataFusion splits the 6 files into 2 partitions varies).
        let roomy = roomy.unwrap();
        assert!(roomy == 5_000 || roomy == 10_000, "{roomy}");
        let (on, off, tight) = both_ways(&provider, &settings, Some(2 * 1024 * 1024), sql).await;
        assert!(
            tight.unwrap() > 10_000,
            "keys handed on more than once: {tight:?}"
        );
        assert_eq!(on, off);
        assert_eq!(on.lines().count(), 5_000 + 4);
        assert!(on.contains("| w004999 | 12 |"), "{on}");
    }
}
